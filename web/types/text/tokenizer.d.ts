// The tokenizer component's jco glue (build/web/text/tokenizer.js); see ../engine/inference.d.ts.
export { instantiate } from "../engine/inference.js";
