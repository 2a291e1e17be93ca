// chat-template.ts — a model's chat template (Jinja, as Hugging Face ships it in tokenizer_config.json,
// or a file given with --chat-template) rendered by @huggingface/jinja, the renderer transformers.js
// uses: messages → the prompt text that `apply_chat_template(..., add_generation_prompt=True)` gives,
// and that prompt's token ids. Bad templates and bad messages give one-line errors.
import * as fs from 'node:fs';
import { Template } from '@huggingface/jinja';
import { fail, IntscaleError } from '../core/errors.ts';
import { fsProblem } from '../core/fs-errors.ts';
import type { Tokenizer } from '../io/tokenizer.ts';

export interface ChatMessage {
  role: string;
  content: string;
}

export class ChatTemplate {
  private readonly template: Template;

  /** `source` (Jinja text) names `where` it came from in errors; bos / eos are the tokens' texts. */
  constructor(source: string, where: string, private readonly special: { bos?: string; eos?: string } = {}) {
    try {
      this.template = new Template(source);
    } catch (e) {
      fail(where, `the chat template does not parse: ${oneLine(e)}`);
    }
  }

  /** The prompt text of `messages`, ending where the assistant's reply starts. */
  render(messages: readonly ChatMessage[]): string {
    try {
      return this.template.render({ messages, add_generation_prompt: true, bos_token: this.special.bos ?? '', eos_token: this.special.eos ?? '' });
    } catch (e) {
      // (raise_exception(msg) in a template, which rejects what it was given, throws Error(msg))
      throw new IntscaleError(`the chat template refused the messages: ${oneLine(e)}`);
    }
  }

  /**
   * Token ids of the rendered prompt, encoded without adding a BOS, as apply_chat_template
   * tokenizes: the template writes it. A leading BOS text becomes the BOS id (tokenizers that do not
   * parse special tokens in text, such as llama2.c's, would spell it out). Where no BOS text is known
   * (no tokenizer_config.json: a llama2.c model), the prompt starts with the BOS id, as every other
   * prompt of such a tokenizer does.
   */
  promptIds(messages: readonly ChatMessage[], tokenizer: Tokenizer): number[] {
    const text = this.render(messages), bos = this.special.bos;
    if (tokenizer.bosId !== undefined && (bos === undefined || (bos !== '' && text.startsWith(bos))))
      return [tokenizer.bosId, ...tokenizer.encode(bos === undefined ? text : text.slice(bos.length), { addBos: false })];
    return tokenizer.encode(text, { addBos: false });
  }
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
}

/** A token's text in tokenizer_config.json: a string, or an AddedToken object's "content". */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/**
 * The chat template of a model: `file` (--chat-template) when given, else tokenizer_config.json's
 * `chat_template` (a string, or a list of named templates of which "default" is taken), else none.
 * BOS / EOS texts come from tokenizer_config.json where there is one.
 */
export function loadChatTemplate(tokenizerConfigPath: string | undefined, file?: string): ChatTemplate | undefined {
  let config: Record<string, unknown> = {};
  if (tokenizerConfigPath && fs.existsSync(tokenizerConfigPath)) {
    try {
      config = JSON.parse(fs.readFileSync(tokenizerConfigPath, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      fail(tokenizerConfigPath, `not valid JSON (${oneLine(e)})`);
    }
  }
  const special = { bos: tokenText(config['bos_token']), eos: tokenText(config['eos_token']) };
  if (file !== undefined) {
    let source: string;
    try {
      source = fs.readFileSync(file, 'utf8');
    } catch (e) {
      fail(file, `cannot read the chat template: ${fsProblem(e) ?? oneLine(e)}`);
    }
    return new ChatTemplate(source, file, special);
  }
  const t = config['chat_template'];
  if (t === undefined || t === null) return undefined;
  if (typeof t === 'string') return new ChatTemplate(t, `${tokenizerConfigPath} chat_template`, special);
  if (Array.isArray(t)) {
    const named = t.find((x) => x && typeof x === 'object' && (x as { name?: unknown }).name === 'default') as { template?: unknown } | undefined;
    if (named && typeof named.template === 'string') return new ChatTemplate(named.template, `${tokenizerConfigPath} chat_template "default"`, special);
  }
  fail(tokenizerConfigPath!, 'chat_template is neither a string nor a list with a template named "default"');
}
