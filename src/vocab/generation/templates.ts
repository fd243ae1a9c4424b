/**
 * CLIP's 80 ImageNet prompt templates (OpenAI CLIP, MIT licence: the ensemble of the paper's
 * "Prompt_Engineering_for_ImageNet" notebook), in their published order. `{}` stands for the
 * class name. Kept in the project so the server never reads data files at run time.
 */
export const IMAGENET_TEMPLATES: readonly string[] = Object.freeze([
  'a bad photo of a {}.',
  'a photo of many {}.',
  'a sculpture of a {}.',
  'a photo of the hard to see {}.',
  'a low resolution photo of the {}.',
  'a rendering of a {}.',
  'graffiti of a {}.',
  'a bad photo of the {}.',
  'a cropped photo of the {}.',
  'a tattoo of a {}.',
  'the embroidered {}.',
  'a photo of a hard to see {}.',
  'a bright photo of a {}.',
  'a photo of a clean {}.',
  'a photo of a dirty {}.',
  'a dark photo of the {}.',
  'a drawing of a {}.',
  'a photo of my {}.',
  'the plastic {}.',
  'a photo of the cool {}.',
  'a close-up photo of a {}.',
  'a black and white photo of the {}.',
  'a painting of the {}.',
  'a painting of a {}.',
  'a pixelated photo of the {}.',
  'a sculpture of the {}.',
  'a bright photo of the {}.',
  'a cropped photo of a {}.',
  'a plastic {}.',
  'a photo of the dirty {}.',
  'a jpeg corrupted photo of a {}.',
  'a blurry photo of the {}.',
  'a photo of the {}.',
  'a good photo of the {}.',
  'a rendering of the {}.',
  'a {} in a video game.',
  'a photo of one {}.',
  'a doodle of a {}.',
  'a close-up photo of the {}.',
  'a photo of a {}.',
  'the origami {}.',
  'the {} in a video game.',
  'a sketch of a {}.',
  'a doodle of the {}.',
  'a origami {}.',
  'a low resolution photo of a {}.',
  'the toy {}.',
  'a rendition of the {}.',
  'a photo of the clean {}.',
  'a photo of a large {}.',
  'a rendition of a {}.',
  'a photo of a nice {}.',
  'a photo of a weird {}.',
  'a blurry photo of a {}.',
  'a cartoon {}.',
  'art of a {}.',
  'a sketch of the {}.',
  'a embroidered {}.',
  'a pixelated photo of a {}.',
  'itap of the {}.',
  'a jpeg corrupted photo of the {}.',
  'a good photo of a {}.',
  'a plushie {}.',
  'a photo of the nice {}.',
  'a photo of the small {}.',
  'a photo of the weird {}.',
  'the cartoon {}.',
  'art of the {}.',
  'a drawing of the {}.',
  'a photo of the large {}.',
  'a black and white photo of a {}.',
  'the plushie {}.',
  'a dark photo of a {}.',
  'itap of a {}.',
  'graffiti of the {}.',
  'a toy {}.',
  'itap of my {}.',
  'a photo of a cool {}.',
  'a photo of a small {}.',
  'a tattoo of the {}.',
]);

/** RAM++'s first description of every tag (upstream: "a photo of a {tag}."). */
export const PRIMARY_TEMPLATE = 'a photo of a {}.';

/**
 * The order the template generator uses: RAM++'s "a photo of a {}." first, then the other 79
 * ImageNet templates in CLIP's published order. The default 51 descriptions per tag are the
 * first 51 of this list; at most 80 distinct ones exist.
 */
export const TEMPLATE_ORDER: readonly string[] = Object.freeze([PRIMARY_TEMPLATE, ...IMAGENET_TEMPLATES.filter((t) => t !== PRIMARY_TEMPLATE)]);

export const MAX_TEMPLATE_DESCRIPTIONS = TEMPLATE_ORDER.length;

/** Fills a template with a tag name (the name is inserted verbatim, as CLIP does). */
export const fillTemplate = (template: string, name: string) => template.replace('{}', name);

/**
 * The first `count` templated descriptions of a tag (deterministic, offline). `count` is
 * clamped to 1…80.
 */
export function templateDescriptions(name: string, count: number): string[] {
  const n = Math.max(1, Math.min(MAX_TEMPLATE_DESCRIPTIONS, Math.floor(count)));
  return TEMPLATE_ORDER.slice(0, n).map((t) => fillTemplate(t, name));
}
