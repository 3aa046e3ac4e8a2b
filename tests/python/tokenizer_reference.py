"""GPT-2 token ids from the reference implementations, tiktoken and Hugging Face tokenizers, for the
C++ tests to compare against (tests/runtime/test_bpe_reference.cpp, tests/fixtures/bpe_gpt2_golden.json).

Both references are built from the local GPT-2 files (../shared/tokenizers/gpt2/), so nothing is
downloaded: tiktoken from gpt2.tiktoken with GPT-2's pattern and <|endoftext|> = 50256, exactly as
tiktoken's own "gpt2" encoding; tokenizers from vocab.json + merges.txt with the ByteLevel
pre-tokenizer and decoder (no prefix space), as GPT-2's tokenizer.json on the Hugging Face hub.
Run it with the interpreter scripts/python_refs.sh prepares (build/pyref/bin/python).

    tokenizer_reference.py --gpt2-dir DIR encode [--specials] [--tokenizer-json NAME=PATH ...]
                           [--only-tokenizer-json] OUT FILE...
        Encodes each FILE (raw bytes) with every reference and writes OUT/<i>.<reference>.ids
        (little-endian int32, i = the FILE's index): "tiktoken" always, "tokenizers" (GPT-2 from
        vocab.json + merges.txt) and each NAME (`tokenizers` loading the tokenizer.json at PATH) when
        the file is valid UTF-8, since they take only Unicode text. --only-tokenizer-json: the NAMEs
        alone. --specials: the text of <|endoftext|> becomes its id; without it every byte is
        ordinary text.
    tokenizer_reference.py --gpt2-dir DIR golden OUT.json
        Writes the golden set: the CASES below with their ids, after checking that the references
        agree on every one of them.

Text that is not UTF-8 has no reference encoder, since both take Unicode strings; for it the ids
are tiktoken's own BPE (Encoding._encode_single_piece) on the pieces that GPT-2's regex (the
`regex` module, as openai/gpt-2's encoder.py used) cuts from the bytes decoded with
"surrogateescape": each invalid byte a lone surrogate, a character that is neither letter, number
nor space, which is the rule inkstone's pre-tokenizer states. On valid text that construction is
checked to give encode_ordinary's ids.
"""

import argparse
import json
import os
import struct
import sys

import regex
import tiktoken
import tiktoken.load
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
END_OF_TEXT = "<|endoftext|>"

# The golden set: (name, text or bytes, specials). Code points stay within Unicode 14, the version of
# inkstone's character tables: engines built on newer versions class later letters differently.
CASES = [
    ("hello", "Hello world", False),
    ("hello_space", " Hello world", False),
    ("hello_punct", "Hello, world!", False),
    ("hello_newline", "Hello world\n", False),
    ("empty", "", False),
    ("contractions", "I'm sure you'll say it's what they've done; we'd've... DON'T 'S 'll o'clock", False),
    ("quotes", "\"Well,\" said he -- 'twas 'tis ''re ' s", False),
    ("prose",
     "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
     "must be in want of a wife.\n\nHowever little known the feelings or views of such a man may be...",
     False),
    ("chinese", "满纸荒唐言，一把辛酸泪！都云作者痴，谁解其中味？\r\n第一回　甄士隐梦幻识通灵", False),
    ("japanese_korean", "こんにちは世界。カタカナとひらがな 안녕하세요 세계", False),
    ("emoji", "🤗👍🏽 family: 👨‍👩‍👧‍👦 flag 🇫🇷 ❤️ 1️⃣", False),
    ("digits", "3.14159 1,000,000 2024-01-01 007 ٣٤٥ ½ Ⅻ ① ²³ 12345678901234567890", False),
    ("whitespace_runs", "a  b   c\t\td\n\n\ne    \n  f \t \n", False),
    ("leading_trailing_spaces", "   start and end   ", False),
    ("only_spaces", "      ", False),
    ("crlf", "line one\r\nline two\r\n\r\n  indented\r\n", False),
    ("unicode_spaces", "a\u00a0b\u3000c\u2028d\u2029e\x85f\x0bg\x0ch\u2009i\u200aj", False),
    ("separators_not_space", "a\x1cb \x1d\x1e\x1f c\x1c \x1c", False),
    ("mixed_scripts",
     "Привет, мир! Γειά σου κόσμε. مرحبا بالعالم שלום עולם नमस्ते दुनिया สวัสดี Ωmega-7", False),
    ("combining_marks", "e\u0301te\u0301 n\u0303 \u0915\u093f\u0937 a\u0308\u0308\u0308", False),
    ("invisible", "a\u200bb\u200dc\ufeffd\u00ade\u2060f", False),
    ("code", "def f(x):\n    return x**2  # square\n\tif a<=b:{}\n", False),
    ("punctuation", "!!!??? ... --- *** ((( ))) @#$%^&*_+=|\\/~`", False),
    ("private_use", "\ue000\uf8ff \U000f0000 x", False),
    ("controls", "\x00\x01\x02 \x7f\x1b[31mred\x1b[0m", False),
    ("long_word", "a" * 300 + "supercalifragilisticexpialidocious" * 12, False),
    ("long_digits", "1234567890" * 30, False),
    ("long_spaces", " " * 1000 + "x" + "\n" * 300, False),
    ("long_chinese", "天地玄黄宇宙洪荒日月盈昃辰宿列张" * 20, False),
    ("eot_as_text", "<|endoftext|>", False),
    ("eot_in_text", "before<|endoftext|>after <|endoftext|>", False),
    ("eot_special", "<|endoftext|>", True),
    ("eot_special_between", "a<|endoftext|>b<|endoftext|><|endoftext|> c\n<|endoftext|>", True),
    ("eot_special_partial", "<|endoftext|<|endoftext|>|endoftext|>", True),
    ("invalid_ff", b"\xff", False),
    ("invalid_in_word", b"abc\xff\xfedef", False),
    ("invalid_truncated", b"\xe6\x97", False),
    ("invalid_truncated_then_letters", b"\xe6\x97abc \xe6\x97 \xe6\x97\xa5", False),
    ("invalid_overlong", b"\xc0\x80 \xc1\xbf \xe0\x80\x80", False),
    ("invalid_surrogate", b"\xed\xa0\x80 \xed\xbf\xbf", False),
    ("invalid_above_max", b"\xf4\x90\x80\x80 \xf5\x80", False),
    ("invalid_continuations", b" \x80\x80 x\x80y \xbf", False),
    ("invalid_truncated_emoji", b"\xf0\x9f\xa4 hi \xf0\x9f", False),
    ("invalid_latin1", b"caf\xe9 na\xefve r\xe9sum\xe9", False),
    ("invalid_spaces_around", b"\xff  \xfe\n\xfd\t", False),
    ("invalid_mixed", "你好".encode() + b"\x80" + "世界 ok".encode() + b"\xc3", False),
]


def load_references(gpt2_dir):
    ranks = tiktoken.load.load_tiktoken_bpe(os.path.join(gpt2_dir, "gpt2.tiktoken"))
    tik = tiktoken.Encoding("gpt2-local", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                            special_tokens={END_OF_TEXT: len(ranks)})
    hf = Tokenizer(models.BPE.from_file(os.path.join(gpt2_dir, "vocab.json"),
                                        os.path.join(gpt2_dir, "merges.txt")))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens([END_OF_TEXT])
    return tik, hf


def tiktoken_ids(tik, data, specials):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        if specials:
            sys.exit("tokenizer_reference: --specials needs valid UTF-8")
        return split_reference_ids(tik, data)
    return tik.encode(text, allowed_special="all") if specials else tik.encode_ordinary(text)


def split_reference_ids(tik, data):
    text = data.decode("utf-8", "surrogateescape")
    ids = []
    for piece in regex.findall(GPT2_PATTERN, text):
        ids += tik._encode_single_piece(piece.encode("utf-8", "surrogateescape"))
    return ids


def hf_ids(tokenizer, text, specials):
    tokenizer.encode_special_tokens = not specials  # True: special token text is ordinary text
    return tokenizer.encode(text).ids


def write_ids(path, ids):
    with open(path, "wb") as f:
        f.write(struct.pack(f"<{len(ids)}i", *ids))


def encode(args, tik, hf):
    extra = {}
    for spec in args.tokenizer_json:
        name, _, path = spec.partition("=")
        if not name or not path:
            sys.exit(f"tokenizer_reference: --tokenizer-json takes NAME=PATH, got {spec!r}")
        extra[name] = Tokenizer.from_file(path)
    os.makedirs(args.out, exist_ok=True)
    for i, path in enumerate(args.files):
        with open(path, "rb") as f:
            data = f.read()
        if not args.only_tokenizer_json:
            write_ids(os.path.join(args.out, f"{i}.tiktoken.ids"), tiktoken_ids(tik, data, args.specials))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if not args.only_tokenizer_json:
            write_ids(os.path.join(args.out, f"{i}.tokenizers.ids"), hf_ids(hf, text, args.specials))
        for name, tokenizer in extra.items():
            write_ids(os.path.join(args.out, f"{i}.{name}.ids"), hf_ids(tokenizer, text, args.specials))


def golden(args, tik, hf):
    cases = []
    for name, value, specials in CASES:
        data = value if isinstance(value, bytes) else value.encode("utf-8")
        ids = tiktoken_ids(tik, data, specials)
        if isinstance(value, str):
            hf_result = hf_ids(hf, value, specials)
            if hf_result != ids:
                sys.exit(f"tokenizer_reference: {name}: tiktoken {ids} != tokenizers {hf_result}")
            if not specials and split_reference_ids(tik, data) != ids:
                sys.exit(f"tokenizer_reference: {name}: the split reference disagrees with tiktoken")
        else:
            try:
                data.decode("utf-8")
                sys.exit(f"tokenizer_reference: {name}: bytes cases are for invalid UTF-8")
            except UnicodeDecodeError:
                pass
        case = {"name": name}
        case.update({"text": value} if isinstance(value, str) else {"hex": value.hex()})
        case.update({"specials": specials, "ids": ids})
        cases.append(case)
    doc = {
        "about": "GPT-2 token ids of varied texts, from tiktoken " + tiktoken.__version__ +
                 " (tokenizers agreeing on every valid UTF-8 case); written by "
                 "tests/python/tokenizer_reference.py golden. 'hex': the bytes, for text that is not UTF-8; "
                 "'specials': the text of <|endoftext|> encodes to its id.",
        "cases": cases,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("{\n")
        f.write(f'  "about": {json.dumps(doc["about"])},\n  "cases": [\n')
        f.write(",\n".join("    " + json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n  ]\n}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpt2-dir", required=True)
    commands = parser.add_subparsers(dest="command", required=True)
    enc = commands.add_parser("encode")
    enc.add_argument("--specials", action="store_true")
    enc.add_argument("--tokenizer-json", action="append", default=[], metavar="NAME=PATH")
    enc.add_argument("--only-tokenizer-json", action="store_true")
    enc.add_argument("out")
    enc.add_argument("files", nargs="+")
    gold = commands.add_parser("golden")
    gold.add_argument("out")
    args = parser.parse_args()
    tik, hf = load_references(args.gpt2_dir)
    (encode if args.command == "encode" else golden)(args, tik, hf)


if __name__ == "__main__":
    main()
