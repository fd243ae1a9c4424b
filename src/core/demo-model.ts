/**
 * What the server says when its model pack has random weights (the zero-config demo pack):
 * one wording for the start-up log, `npm start`'s banner and tagging answers' warnings.
 */
export const MODEL_INSTALL_COMMAND = 'npx omnitag model install';

export const DEMO_MODEL_WARNING = Object.freeze({
  code: 'DEMO_MODEL',
  message: `The model pack has random weights (a demo): its tags mean nothing. Install the real model with \`${MODEL_INSTALL_COMMAND}\`.`,
});
