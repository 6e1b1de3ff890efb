"""SentencePiece goldens for core/tokenizer (needs Debian's python3-sentencepiece).

Trains two small BPE models with byte fallback on the project's own demo
stories (assets/data/stories.txt.gz) with SentencePiece's own trainer, then
writes, for every text in core/tokenizer/testdata/texts.json, the ids
SentencePiece gives and the text it decodes them to:

  testdata/sp/llama.model + llama_ids.json   Llama 2 / Mistral settings:
      identity normalization, no whitespace squeezing, digits split,
      whitespace-only pieces allowed, byte fallback
  testdata/sp/squeeze.model + squeeze_ids.json  the trainer's whitespace
      defaults (remove_extra_whitespaces) with identity normalization

    /usr/bin/python3 tools/golden/tokenizer/sentencepiece_golden.py   (make golden)
"""
import gzip
import io
import json
import os

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
TESTDATA = os.path.join(ROOT, "core", "tokenizer", "testdata")
OUT = os.path.join(TESTDATA, "sp")


def corpus():
    with gzip.open(os.path.join(ROOT, "assets", "data", "stories.txt.gz"), "rt", encoding="utf-8") as f:
        text = f.read(3_000_000)
    # A few lines with digits, code and non-Latin letters so that the
    # vocabulary has pieces for them too; the rest falls back to bytes.
    extra = ["x = 12 + 345 * 6789", "for i in range(10): print(i)", "café naïve résumé", "日本語 テキスト"] * 50
    return [l for l in text.splitlines() if l.strip()] + extra


def train(name, **opts):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()), model_writer=model, model_type="bpe", vocab_size=1200,
        byte_fallback=True, normalization_rule_name="identity", character_coverage=1.0,
        bos_id=1, eos_id=2, unk_id=0, pad_id=-1, num_threads=2, minloglevel=2, **opts)
    data = model.getvalue()
    with open(os.path.join(OUT, name + ".model"), "wb") as f:
        f.write(data)
    sp = spm.SentencePieceProcessor(model_proto=data)
    with open(os.path.join(TESTDATA, "texts.json"), encoding="utf-8") as f:
        texts = json.load(f)
    rows = []
    for t in texts:
        ids = sp.encode(t)
        rows.append({"text": t, "ids": ids, "decoded": sp.decode(ids)})
    with open(os.path.join(OUT, name + "_ids.json"), "w", encoding="utf-8") as f:
        f.write("[" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "]\n")
    print(f"{name}: {sp.get_piece_size()} pieces, {len(rows)} texts")


def main():
    os.makedirs(OUT, exist_ok=True)
    train("llama", remove_extra_whitespaces=False, split_digits=True, allow_whitespace_only_pieces=True,
          user_defined_symbols=["<|user|>"])
    train("squeeze", remove_extra_whitespaces=True)


if __name__ == "__main__":
    main()
