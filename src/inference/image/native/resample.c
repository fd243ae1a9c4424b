/*
 * The integer passes of the Pillow-identical antialiased bilinear resize (see
 * src/inference/image/resample.ts, which computes the filter weights and calls this). The
 * same arithmetic as the JavaScript passes: 22-bit fixed-point weights, accumulators that
 * start at one half, a horizontal pass clipped to 8 bits, then a vertical pass. Weights are
 * never negative (a triangle filter), so every sum fits in 32 bits.
 */
#include <node_api.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>

#define PRECISION_BITS (32 - 8 - 2)
#define HALF (1 << (PRECISION_BITS - 1))

static inline uint8_t clip8(int32_t acc) {
  if (acc <= 0) return 0;
  if (acc >= (1 << 30)) return 255; /* 256 << PRECISION_BITS */
  return (uint8_t)(acc >> PRECISION_BITS);
}

typedef struct {
  const int32_t *first, *count, *weights;
  int32_t taps;
} weights_t;

/* rows [0, n_rows) of src (width w, RGB) into out (width ow) */
static void horizontal(const uint8_t *src, int32_t w, int32_t n_rows, uint8_t *out, int32_t ow, const weights_t *k) {
  for (int32_t y = 0; y < n_rows; y++) {
    const uint8_t *row = src + (size_t)y * w * 3;
    uint8_t *o = out + (size_t)y * ow * 3;
    for (int32_t x = 0; x < ow; x++) {
      const int32_t *wk = k->weights + (size_t)x * k->taps;
      const uint8_t *p = row + (size_t)k->first[x] * 3;
      int32_t n = k->count[x];
      int32_t r = HALF, g = HALF, b = HALF;
      for (int32_t t = 0; t < n; t++, p += 3) {
        r += p[0] * wk[t];
        g += p[1] * wk[t];
        b += p[2] * wk[t];
      }
      *o++ = clip8(r);
      *o++ = clip8(g);
      *o++ = clip8(b);
    }
  }
}

/* out rows [0, oh) from src rows (stride bytes each; src row 0 is source row row_first) */
static void vertical(const uint8_t *src, int32_t stride, int32_t row_first, uint8_t *out, int32_t oh, const weights_t *k, int32_t *acc) {
  for (int32_t y = 0; y < oh; y++) {
    for (int32_t x = 0; x < stride; x++) acc[x] = HALF;
    const int32_t *wk = k->weights + (size_t)y * k->taps;
    int32_t top = k->first[y] - row_first;
    for (int32_t t = 0; t < k->count[y]; t++) {
      const uint8_t *row = src + (size_t)(top + t) * stride;
      int32_t w = wk[t];
      for (int32_t x = 0; x < stride; x++) acc[x] += row[x] * w;
    }
    uint8_t *o = out + (size_t)y * stride;
    for (int32_t x = 0; x < stride; x++) o[x] = clip8(acc[x]);
  }
}

/*
 * A JPEG decoded row by row with libjpeg-turbo (the decoder Pillow uses, default settings: slow
 * integer IDCT, fancy upsampling), each row going straight through the horizontal pass, so the
 * full-size RGB image is never held. Returns 0 at the first warning or error, or when the
 * image is not what the caller expects (size, colour space): the caller then takes the
 * general path, which decides what the file is and what error it gets.
 */
typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  int warned;
} jpeg_errors_t;

static void jpeg_fail(j_common_ptr cinfo) { longjmp(((jpeg_errors_t *)cinfo->err)->jump, 1); }
static void jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0) ((jpeg_errors_t *)cinfo->err)->warned = 1;
}

static int jpeg_rows_resized(const uint8_t *data, size_t length, int32_t width, int32_t height, int32_t row_first,
                             int32_t row_end, uint8_t *mid, int32_t out_width, const weights_t *k, uint8_t *row) {
  struct jpeg_decompress_struct cinfo;
  jpeg_errors_t errors;
  cinfo.err = jpeg_std_error(&errors.pub);
  errors.pub.error_exit = jpeg_fail;
  errors.pub.emit_message = jpeg_message;
  errors.warned = 0;
  if (setjmp(errors.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return 0;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, (unsigned long)length);
  int ok = jpeg_read_header(&cinfo, TRUE) == JPEG_HEADER_OK &&
           (cinfo.jpeg_color_space == JCS_YCbCr || cinfo.jpeg_color_space == JCS_GRAYSCALE || cinfo.jpeg_color_space == JCS_RGB);
  if (ok) {
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    ok = (int32_t)cinfo.output_width == width && (int32_t)cinfo.output_height == height && cinfo.output_components == 3;
  }
  for (int32_t y = 0; ok && y < height; y++) {
    JSAMPROW rows[1] = {row};
    ok = jpeg_read_scanlines(&cinfo, rows, 1) == 1 && !errors.warned;
    if (ok && y >= row_first && y < row_end) horizontal(row, width, 1, mid + (size_t)(y - row_first) * out_width * 3, out_width, k);
  }
  if (ok) {
    jpeg_finish_decompress(&cinfo);
    ok = !errors.warned;
  }
  jpeg_destroy_decompress(&cinfo);
  return ok;
}

/* ---- Node-API glue: typed arrays in, nothing returned (outputs are written in place) ---- */

static int typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *length) {
  napi_typedarray_type type;
  size_t len;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, &len, data, &buffer, &offset) != napi_ok || type != want) {
    napi_throw_type_error(env, NULL, want == napi_uint8_array ? "expected a Uint8Array" : "expected an Int32Array");
    return 0;
  }
  *length = len;
  return 1;
}

static int int_arg(napi_env env, napi_value v, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok || *out < 0) {
    napi_throw_type_error(env, NULL, "expected a non-negative integer");
    return 0;
  }
  return 1;
}

/*
 * Both passes take (src, size, rows, out, outSize, first, count, weights, taps): for the
 * horizontal pass size = source width, rows = rows to filter; for the vertical pass
 * size = row stride in bytes, rows = the source row that src starts at. Bounds are checked
 * here so that a wrong call throws instead of reading outside the arrays.
 */
static napi_value pass(napi_env env, napi_callback_info info, int is_vertical) {
  size_t argc = 9;
  napi_value argv[9];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 9) {
    napi_throw_type_error(env, NULL, "expected 9 arguments");
    return NULL;
  }
  uint8_t *src, *out;
  int32_t *first, *count, *weights;
  size_t src_len, out_len, first_len, count_len, weights_len;
  int32_t size, rows, out_size, taps;
  if (!typed(env, argv[0], napi_uint8_array, (void **)&src, &src_len) || !int_arg(env, argv[1], &size) ||
      !int_arg(env, argv[2], &rows) || !typed(env, argv[3], napi_uint8_array, (void **)&out, &out_len) ||
      !int_arg(env, argv[4], &out_size) || !typed(env, argv[5], napi_int32_array, (void **)&first, &first_len) ||
      !typed(env, argv[6], napi_int32_array, (void **)&count, &count_len) ||
      !typed(env, argv[7], napi_int32_array, (void **)&weights, &weights_len) || !int_arg(env, argv[8], &taps))
    return NULL;
  weights_t k = {first, count, weights, taps};
  int ok = first_len >= (size_t)out_size && count_len >= (size_t)out_size && weights_len >= (size_t)out_size * taps;
  for (int32_t i = 0; ok && i < out_size; i++) ok = count[i] >= 0 && count[i] <= taps && first[i] >= 0;
  if (!is_vertical) {
    for (int32_t i = 0; ok && i < out_size; i++) ok = first[i] + count[i] <= size;
    ok = ok && src_len >= (size_t)rows * size * 3 && out_len >= (size_t)rows * out_size * 3;
    if (!ok) {
      napi_throw_range_error(env, NULL, "horizontal pass: arrays too short for the sizes given");
      return NULL;
    }
    horizontal(src, size, rows, out, out_size, &k);
    return NULL;
  }
  size_t src_rows = size > 0 ? src_len / (size_t)size : 0;
  for (int32_t i = 0; ok && i < out_size; i++) ok = first[i] >= rows && (size_t)(first[i] - rows + count[i]) <= src_rows;
  ok = ok && out_len >= (size_t)out_size * size;
  if (!ok) {
    napi_throw_range_error(env, NULL, "vertical pass: arrays too short for the sizes given");
    return NULL;
  }
  int32_t *acc = malloc(sizeof(int32_t) * (size_t)(size > 0 ? size : 1));
  if (!acc) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  vertical(src, size, rows, out, out_size, &k, acc);
  free(acc);
  return NULL;
}

/*
 * jpegRowsResized(bytes, width, height, rowFirst, rowEnd, mid, outWidth, first, count, weights, taps)
 * → true when `mid` holds rows [rowFirst, rowEnd) of the image filtered horizontally.
 */
static napi_value jpeg_js(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 11) {
    napi_throw_type_error(env, NULL, "expected 11 arguments");
    return NULL;
  }
  uint8_t *bytes, *mid;
  int32_t *first, *count, *weights;
  size_t bytes_len, mid_len, first_len, count_len, weights_len;
  int32_t width, height, row_first, row_end, out_width, taps;
  if (!typed(env, argv[0], napi_uint8_array, (void **)&bytes, &bytes_len) || !int_arg(env, argv[1], &width) ||
      !int_arg(env, argv[2], &height) || !int_arg(env, argv[3], &row_first) || !int_arg(env, argv[4], &row_end) ||
      !typed(env, argv[5], napi_uint8_array, (void **)&mid, &mid_len) || !int_arg(env, argv[6], &out_width) ||
      !typed(env, argv[7], napi_int32_array, (void **)&first, &first_len) ||
      !typed(env, argv[8], napi_int32_array, (void **)&count, &count_len) ||
      !typed(env, argv[9], napi_int32_array, (void **)&weights, &weights_len) || !int_arg(env, argv[10], &taps))
    return NULL;
  int ok = width > 0 && height > 0 && row_first < row_end && row_end <= height && first_len >= (size_t)out_width &&
           count_len >= (size_t)out_width && weights_len >= (size_t)out_width * taps &&
           mid_len >= (size_t)(row_end - row_first) * out_width * 3;
  for (int32_t i = 0; ok && i < out_width; i++) ok = count[i] >= 0 && count[i] <= taps && first[i] >= 0 && first[i] + count[i] <= width;
  if (!ok) {
    napi_throw_range_error(env, NULL, "jpeg rows: arrays too short for the sizes given");
    return NULL;
  }
  uint8_t *row = malloc((size_t)width * 3);
  if (!row) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  weights_t k = {first, count, weights, taps};
  int done = jpeg_rows_resized(bytes, bytes_len, width, height, row_first, row_end, mid, out_width, &k, row);
  free(row);
  napi_value result;
  napi_get_boolean(env, done, &result);
  return result;
}

static napi_value horizontal_js(napi_env env, napi_callback_info info) { return pass(env, info, 0); }
static napi_value vertical_js(napi_env env, napi_callback_info info) { return pass(env, info, 1); }

NAPI_MODULE_INIT() {
  napi_value h, v;
  napi_create_function(env, "horizontal", NAPI_AUTO_LENGTH, horizontal_js, NULL, &h);
  napi_create_function(env, "vertical", NAPI_AUTO_LENGTH, vertical_js, NULL, &v);
  napi_set_named_property(env, exports, "horizontal", h);
  napi_set_named_property(env, exports, "vertical", v);
  napi_value j;
  napi_create_function(env, "jpegRowsResized", NAPI_AUTO_LENGTH, jpeg_js, NULL, &j);
  napi_set_named_property(env, exports, "jpegRowsResized", j);
  return exports;
}
