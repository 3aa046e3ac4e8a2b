"""Read inkstone token shards (the layout is runtime/token_shard.h) from Python bench scripts."""
import struct
import sys
from pathlib import Path

HEADER = 72  # magic, version, token width, vocab size, reserved, token count, text bytes, sha256


def read_shard(path: Path):
    """(tokens, vocab size) of one shard; exits with a message naming the file if it is not one."""
    data = path.read_bytes()
    if data[:8] != b"INKSTOK1":
        sys.exit(f"{path}: not an inkstone token shard; run inkstone prepare")
    width, vocab = struct.unpack_from("<II", data, 12)
    count = struct.unpack_from("<Q", data, 24)[0]
    return struct.unpack_from(f"<{count}{'H' if width == 2 else 'I'}", data, HEADER), vocab


def read_split(folder: Path, split: str):
    """The tokens of every {split}_*.bin shard in folder, in order."""
    tokens = []
    for path in sorted(folder.glob(f"{split}_*.bin")):
        tokens += read_shard(path)[0]
    if not tokens:
        sys.exit(f"{folder}: no {split}_*.bin shards; run inkstone prepare")
    return tokens
