"""``python -m apt_model.data OUT_DIR``: write the demo corpus (train jsonl + held-out text)."""

from __future__ import annotations

import argparse

from apt_model.data import write_demo_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", help="folder to write demo-train.jsonl and demo-eval.txt into")
    parser.add_argument("--english-chars", type=int, default=300_000)
    parser.add_argument("--chinese-chars", type=int, default=150_000)
    args = parser.parse_args()
    train, held_out = write_demo_corpus(args.out_dir, args.english_chars, args.chinese_chars)
    print(f"{train}\n{held_out}")


if __name__ == "__main__":
    main()
