{
  "targets": [
    {
      "target_name": "omnitag_resample",
      "sources": ["resample.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O3", "-std=c11"],
      "libraries": ["-ljpeg"]
    }
  ]
}
