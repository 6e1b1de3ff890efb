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
  testdata/unigram/spm.model, tokenizer.json, spm_ids.json  a Unigram model with the
      trainer's default normalization (nmt_nfkc, a precompiled charsmap),
      written as the tokenizer.json HF's converter makes for T5
      (Precompiled normalizer, WhitespaceSplit + Metaspace, Unigram), and
      the ids SentencePiece itself gives (models.mjs writes HF's)

It also runs jinja_features.py (core/chat's Jinja goldens).

    /usr/bin/python3 tools/golden/tokenizer/sentencepiece_golden.py   (make golden)
"""
import base64
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


def proto_fields(data):
    """Yields (field number, wire type, value) of a protobuf message."""
    i = 0

    def varint():
        nonlocal i
        v, shift = 0, 0
        while True:
            b = data[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v

    while i < len(data):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            yield field, wire, varint()
        elif wire == 1:
            yield field, wire, data[i:i + 8]
            i += 8
        elif wire == 2:
            n = varint()
            yield field, wire, data[i:i + n]
            i += n
        elif wire == 5:
            yield field, wire, data[i:i + 4]
            i += 4
        else:
            raise ValueError(f"wire type {wire}")


def unigram():
    """A Unigram model as T5's tokenizer.json has it."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()), model_writer=model, model_type="unigram", vocab_size=800, hard_vocab_limit=False,
        character_coverage=0.9995, bos_id=-1, eos_id=1, unk_id=2, pad_id=0, num_threads=2, minloglevel=2)
    data = model.getvalue()
    charsmap = b""
    for field, _, value in proto_fields(data):
        if field == 3:  # normalizer_spec
            for f2, _, v2 in proto_fields(value):
                if f2 == 2:  # precompiled_charsmap
                    charsmap = v2
    if not charsmap:
        raise SystemExit("the Unigram model has no precompiled charsmap")
    sp = spm.SentencePieceProcessor(model_proto=data)
    vocab = [[sp.id_to_piece(i), sp.get_score(i)] for i in range(sp.get_piece_size())]
    doc = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": sp.id_to_piece(i), "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i in (0, 1, 2)],
        "normalizer": {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"}, {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}]},
        "post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                           "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True},
        "model": {"type": "Unigram", "unk_id": 2, "vocab": vocab},
    }
    out = os.path.join(TESTDATA, "unigram")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "spm.model"), "wb") as f:
        f.write(data)
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    with open(os.path.join(TESTDATA, "texts.json"), encoding="utf-8") as f:
        texts = json.load(f)
    rows = [{"text": t, "ids": sp.encode(t)} for t in texts]
    with open(os.path.join(out, "spm_ids.json"), "w", encoding="utf-8") as f:
        f.write("[" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "]\n")
    print(f"unigram: {sp.get_piece_size()} pieces, charsmap {len(charsmap)} bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    unigram()
    train("llama", remove_extra_whitespaces=False, split_digits=True, allow_whitespace_only_pieces=True,
          user_defined_symbols=["<|user|>"])
    train("squeeze", remove_extra_whitespaces=True)
    # The chat templates' Jinja goldens (jinja2, as transformers renders).
    import jinja_features
    jinja_features.main()


if __name__ == "__main__":
    main()
