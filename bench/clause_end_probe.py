#!/usr/bin/python3
"""Whether a model knows where a clause of verse ends, without sampling noise.

For every token of a prepared split that is a Chinese character, counts the characters since the last
clause boundary (，。？！；：、 or a line break) and sets the probability the model gives to the next
token being clause punctuation beside how often it is. A model that has learnt the metre puts its
mass at 5 and 7 and none at 3, 4 or 6, as the text does; one that has not spreads it evenly.
bench/poem_shape.py measures the same thing on sampled text, where twenty samples leave a few points
of noise; this reads the model's probabilities on every validation token.

    /usr/bin/python3 bench/clause_end_probe.py runs/tang300/latest data/prepared/tang300 [--split train]

Needs torch (Debian's python3-torch serves /usr/bin/python3); reads an F32 model.safetensors through
tests/fixtures/torch_gpt2.py, in windows of the model's context that do not overlap.
"""
import argparse
import json
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "fixtures"))
import torch  # noqa: E402
from torch_gpt2 import GPT2  # noqa: E402
from token_shards import read_split  # noqa: E402

CLAUSE_END = "，。？！；：、"
MAX_SINCE = 9


def byte_decoder():
    """GPT-2's byte-level alphabet, reversed: the byte each printable stand-in character means."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    others = [b for b in range(256) if b not in printable]  # stand in as 256, 257, ...
    pairs = [(b, b) for b in printable] + [(b, 256 + n) for n, b in enumerate(others)]
    return {chr(c): b for b, c in pairs}


def token_texts(tokenizer_json):
    decode = byte_decoder()
    model = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]
    texts = {}
    for piece, index in model["vocab"].items():
        if all(ch in decode for ch in piece):
            texts[index] = bytes(decode[ch] for ch in piece).decode("utf-8", errors="replace")
    return texts


def load_model(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    raw = (checkpoint / "model.safetensors").read_bytes()
    size = struct.unpack_from("<Q", raw, 0)[0]
    header, base = json.loads(raw[8 : 8 + size]), 8 + size
    state = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] != "F32":
            sys.exit(f"{checkpoint}/model.safetensors: {name} is {entry['dtype']}; this probe reads F32 checkpoints")
        begin, end = entry["data_offsets"]
        values = torch.frombuffer(bytearray(raw[base + begin : base + end]), dtype=torch.float32)
        state[name] = values.view(entry["shape"])
    model = GPT2(config["n_layer"], config["n_head"], config["n_embd"], config["n_positions"], config["vocab_size"])
    model.load_state_dict(state)
    return model.eval(), config["n_positions"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a checkpoint folder (a run's latest, or step_N)")
    parser.add_argument("data", type=Path, help="the prepared data folder the model was trained on")
    parser.add_argument("--split", default="val", choices=["val", "train"])
    parser.add_argument("--max-tokens", type=int, default=20000, help="read at most this many tokens")
    args = parser.parse_args()
    for need in (args.data / "tokenizer.json", args.checkpoint / "model.safetensors", args.checkpoint / "config.json"):
        if not need.is_file():
            sys.exit(f"{need}: not found; give a checkpoint folder and the prepared data folder it was trained on")

    texts = token_texts(args.data / "tokenizer.json")
    ends = sorted(i for i, t in texts.items() if len(t) == 1 and t in CLAUSE_END)
    is_end = set(ends)
    is_char = {i for i, t in texts.items() if len(t) == 1 and "\u4e00" <= t <= "\u9fff"}
    tokens = read_split(args.data, args.split)[: args.max_tokens]
    model, window = load_model(args.checkpoint)

    model_p = [0.0] * (MAX_SINCE + 1)
    actual = [0] * (MAX_SINCE + 1)
    seen = [0] * (MAX_SINCE + 1)
    with torch.no_grad():
        for start in range(0, len(tokens) - window, window):
            logits, _ = model(torch.tensor(tokens[start : start + window])[None])
            p_end = torch.softmax(logits[0].double(), -1)[:, ends].sum(-1)
            since = None  # characters since the last boundary; None until one is seen in the window
            for t in range(window):
                token = tokens[start + t]
                if token in is_end or texts.get(token) == "\n":
                    since = 0
                    continue
                since = since + 1 if since is not None and token in is_char else None
                if since is None or since > MAX_SINCE:
                    since = None
                    continue
                model_p[since] += p_end[t].item()
                actual[since] += tokens[start + t + 1] in is_end
                seen[since] += 1
    print(f"{args.checkpoint} on {args.data} ({args.split}, {len(tokens)} tokens, windows of {window})")
    lengths = range(1, MAX_SINCE + 1)

    def row(label, cells):
        print(f"{label:<37}" + "  ".join(cells))

    row("characters since the last boundary:", (f"{n:>4}" for n in lengths))
    row("model p(next is clause punctuation):", (f"{model_p[n] / max(seen[n], 1):4.2f}" for n in lengths))
    row("share of them in the text:", (f"{actual[n] / max(seen[n], 1):4.2f}" for n in lengths))
    row("tokens counted:", (f"{seen[n]:>4}" for n in lengths))

if __name__ == "__main__":
    main()
