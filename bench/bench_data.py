"""data-processors figures, each against a baseline measured in the same run (medians of repeats).

.venv/bin/python bench/bench_data.py [--quick] [--repeats 3] [--csv-mb 20] [--originals 20000] [--only minhash,html]

1. MinHash-LSH (apt_data.dedup) recall / precision of "is a near duplicate of an earlier document"
   against exact Jaccard >= 0.8 of the same shingle sets (all pairs sharing a shingle, by a sparse
   product), on the demo corpus cut into 20k originals with 5% planted exact copies and 10% seeded
   near copies (exact Jaccard to their original 0.6-0.98); docs/s against
   datasketch MinHash + MinHashLSH at the same num_perm on the same shingles.
2. CSV ingest + clean (basic) + write through the pipeline vs pandas read_csv + apply(ftfy.fix_text)
   + to_json: throughput and peak RSS, each in a fresh process.
3. The code strategy on every standard-library .py file that compiles: identical AST.
4. GB18030 / Big5 / cp1252-mojibake copies read back (detection + decode + basic) == basic(original).
5. HTML main text (extractor=main) token F1 against the page's paragraphs vs BeautifulSoup get_text(),
   on seeded template pages and on pydoc pages of standard-library modules (truth: pydoc's text).
6. Near-duplicate pairs across the train/eval split: the pipeline's family split vs a random split.
7. A whole process job (dedup + split) with workers=2 vs workers=1: docs/s, and the same data.jsonl.

Targets (issue 20): recall and precision >= 0.95; >= 2x datasketch's docs/s with recall within 0.01;
>= 2x the pandas throughput at <= 0.5x its peak RSS; 100% identical AST; >= 99% recovered;
F1 >= 0.90 and above get_text(); 0 pairs across the split.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "services" / "data-processors")]
from bench.common import machine, median, save, verdict  # noqa: E402

from apt_data import clean, dedup, encoding, html, sample_data  # noqa: E402

THRESHOLD = 0.8
NEAR_JACCARD = (0.6, 0.98)   # the planted near copies' exact Jaccard to their original
PYDOC_MODULES = ("argparse", "base64", "bisect", "calendar", "colorsys", "configparser", "contextlib", "csv",
                 "dataclasses", "difflib", "enum", "fnmatch", "fractions", "functools", "getopt", "glob", "gzip",
                 "heapq", "hmac", "ipaddress", "json", "logging", "pathlib", "pprint", "queue", "random", "sched",
                 "secrets", "shlex", "shutil", "statistics", "string", "tarfile", "tempfile", "textwrap", "timeit",
                 "tokenize", "urllib.parse", "uuid", "zipfile")


# -- 1. near duplicates -------------------------------------------------------------------------
def truth_duplicates(sets: list[np.ndarray], threshold: float) -> np.ndarray:
    """Per document: is there an earlier one with exact Jaccard >= threshold (all pairs, sparse)."""
    from scipy import sparse

    vocab: dict[int, int] = {}
    rows, cols = [], []
    for i, s in enumerate(sets):
        for h in s.tolist():
            rows.append(i)
            cols.append(vocab.setdefault(h, len(vocab)))
    m = sparse.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(len(sets), len(vocab)))
    inter = (m @ m.T).tocoo()
    sizes = np.array([len(s) for s in sets])
    keep = inter.row > inter.col  # (later, earlier)
    i, j, n = inter.row[keep], inter.col[keep], inter.data[keep]
    jac = n / (sizes[i] + sizes[j] - n)
    dup = np.zeros(len(sets), dtype=bool)
    dup[i[jac >= threshold]] = True
    return dup


def recall_precision(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hit = (pred & truth).sum()
    return float(hit / max(1, truth.sum())), float(hit / max(1, pred.sum()))


def ours(texts: list[str], num_perm: int, confirm: bool) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    index = dedup.NearDuplicateIndex(THRESHOLD, num_perm, text_of=texts.__getitem__ if confirm else None)
    found = []
    for k in range(0, len(texts), 256):
        found += index.add(texts[k:k + 256])
    return np.array([m >= 0 for m, _ in found]), time.perf_counter() - start


def datasketch_run(texts: list[str], num_perm: int) -> tuple[np.ndarray, float]:
    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=num_perm)
    pred = []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=num_perm)
        m.update_batch([h.tobytes() for h in dedup.shingles(text)])
        pred.append(bool(lsh.query(m)))
        lsh.insert(i, m)
    return np.array(pred), time.perf_counter() - start


def bench_minhash(n_originals: int, num_perm: int, repeats: int) -> dict:
    planted = sample_data.planted_corpus(n_originals, n_originals // 20, n_originals // 10, seed=0, jaccard=NEAR_JACCARD)
    texts = planted.documents
    truth = truth_duplicates([dedup.shingles(t) for t in texts], THRESHOLD)
    rows = {}
    for name, fn in (("ours", lambda: ours(texts, num_perm, True)), ("ours_unconfirmed", lambda: ours(texts, num_perm, False)),
                     ("datasketch", lambda: datasketch_run(texts, num_perm))):
        runs = [fn() for _ in range(repeats)]
        recall, precision = recall_precision(runs[0][0], truth)
        rows[name] = {"recall": round(recall, 4), "precision": round(precision, 4),
                      "docs_per_s": round(len(texts) / median([s for _, s in runs]), 1)}
    return {"documents": len(texts), "true_duplicates": int(truth.sum()), "num_perm": num_perm, **rows,
            "speedup_vs_datasketch": round(rows["ours"]["docs_per_s"] / rows["datasketch"]["docs_per_s"], 2),
            "speedup_unconfirmed": round(rows["ours_unconfirmed"]["docs_per_s"] / rows["datasketch"]["docs_per_s"], 2)}


# -- 2. csv ingest ------------------------------------------------------------------------------
def write_csv(path: Path, megabytes: int) -> int:
    import pandas as pd

    docs = sample_data.short_documents()
    rng = random.Random(0)
    rows, size = [], 0
    while size < megabytes << 20:
        text = rng.choice(docs)
        if rng.random() < 0.05:
            text = sample_data.mojibake(text)
        rows.append(text)
        size += len(text.encode("utf-8")) + 8
    pd.DataFrame({"id": range(len(rows)), "text": rows}).to_csv(path, index=False)
    return len(rows)


def _pipeline_job(csv_path: str, home: str) -> None:
    from apt_data.pipeline import run_process
    from apt_data.spec import ProcessSpec
    from apt_model.store import Store
    from apt_model.testing import JobRecorder

    spec = ProcessSpec(name="bench", paths=(csv_path,), quality_filters=False)
    run_process(Store(home), spec, [Path(csv_path)], JobRecorder(), 1 << 34)


def _pandas_job(csv_path: str, home: str) -> None:
    import ftfy
    import pandas as pd

    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    frame["text"] = frame["text"].apply(ftfy.fix_text)
    Path(home).mkdir(parents=True)
    frame.to_json(Path(home) / "out.jsonl", orient="records", lines=True, force_ascii=False)


JOBS = {"pipeline": _pipeline_job, "pandas_ftfy": _pandas_job}


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux keeps that across exec, so a child
    started by the 300 MB benchmark process would report the parent's figure."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def run_job(name: str, csv_path: str, home: str) -> None:
    """In a fresh process (``--job``): the job's imports are loaded before the clock starts."""
    import ftfy, pandas  # noqa: F401,E401  (both jobs use them)
    if name == "pipeline":
        from apt_data import pipeline  # noqa: F401

    before = peak_rss_mb()
    start = time.perf_counter()
    JOBS[name](csv_path, home)
    peak = peak_rss_mb()
    print(json.dumps({"seconds": time.perf_counter() - start, "rss_mb": peak, "job_rss_mb": peak - before}))


def in_fresh_process(name: str, csv_path: str, home: str) -> tuple[float, float]:
    out = subprocess.run([sys.executable, __file__, "--job", name, csv_path, home], capture_output=True,
                         text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return row["seconds"], row["rss_mb"], row["job_rss_mb"]


def bench_csv(megabytes: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        rows = write_csv(path, megabytes)
        mb = path.stat().st_size / 2**20
        result = {}
        for name in JOBS:
            runs = [in_fresh_process(name, str(path), str(Path(tmp) / f"{name}-{k}")) for k in range(repeats)]
            result[name] = {"mb_per_s": round(mb / median([r[0] for r in runs]), 2),
                            "peak_rss_mb": round(median([r[1] for r in runs]), 1),
                            "growth_during_job_mb": round(median([r[2] for r in runs]), 1)}
    return {"csv_mb": round(mb, 1), "rows": rows, **result,
            "throughput_x": round(result["pipeline"]["mb_per_s"] / result["pandas_ftfy"]["mb_per_s"], 2),
            "rss_ratio": round(result["pipeline"]["peak_rss_mb"] / result["pandas_ftfy"]["peak_rss_mb"], 2),
            "growth_ratio": round(result["pipeline"]["growth_during_job_mb"]
                                  / max(0.1, result["pandas_ftfy"]["growth_during_job_mb"]), 2)}


# -- 3. code ------------------------------------------------------------------------------------
def bench_code() -> dict:
    files = sorted(p for p in Path(sysconfig.get_paths()["stdlib"]).rglob("*.py") if "site-packages" not in p.parts)
    compiled = identical = 0
    different = []
    for path in files:
        try:
            source = path.read_text(encoding="utf-8")
            before = ast.dump(ast.parse(source))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        compiled += 1
        if ast.dump(ast.parse(clean.code(source))) == before:
            identical += 1
        else:
            different.append(str(path))
    return {"files_that_compile": compiled, "identical_ast": identical,
            "identical_share": round(identical / max(1, compiled), 4), "different": different[:5]}


# -- 4. encodings -------------------------------------------------------------------------------
def bench_encodings(n: int) -> dict:
    docs = sample_data.short_documents()
    rng = random.Random(1)
    chinese = rng.sample([d for d in docs if " " not in d], n)
    english = rng.sample([d for d in docs if " " in d], n)
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, texts in (("gb18030", chinese), ("big5", chinese), ("mojibake", english)):
            ok = 0
            for i, text in enumerate(texts):
                path = Path(tmp) / f"{kind}-{i}.txt"
                if kind == "mojibake":
                    text = text.replace("e", "é", 1)
                    original = text
                    path.write_text(sample_data.mojibake(text), encoding="utf-8")
                else:
                    original = text.encode(kind, errors="ignore").decode(kind)  # what the encoding can hold
                    path.write_bytes(original.encode(kind))
                got = clean.basic(encoding.read_text(path, encoding.detect(path)))
                ok += got == clean.basic(original)
            result[kind] = round(ok / len(texts), 4)
    return result


# -- 5. html ------------------------------------------------------------------------------------
def f1(predicted: str, truth: str) -> float:
    p, t = Counter(predicted.split()), Counter(truth.split())
    overlap = sum((p & t).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(p.values()), overlap / sum(t.values())
    return 2 * precision * recall / (precision + recall)


def bench_html(n: int, pydoc_modules: tuple[str, ...] = PYDOC_MODULES) -> dict:
    """F1 of extract_text(main) and of get_text() against the main text: seeded template pages
    (nav, sidebar, footer around paragraphs) and pydoc pages of standard-library modules."""
    from bs4 import BeautifulSoup

    docs = [d for d in sample_data.short_documents() if " " in d]
    rng = random.Random(2)
    pages = []
    for k in range(n):
        paragraphs = rng.sample(docs, rng.randint(1, 6))
        pages.append(("template", sample_data.html_page(f"Page {k}", paragraphs), " ".join([f"Page {k}", *paragraphs])))
    pages += [("pydoc", *pydoc_page(name)) for name in pydoc_modules]
    scores: dict[str, dict[str, list[float]]] = {}
    for kind, page, truth in pages:
        row = scores.setdefault(kind, {"main": [], "get_text": []})
        row["main"].append(f1(html.extract_text(page, "main"), truth))
        row["get_text"].append(f1(BeautifulSoup(page, "lxml").get_text(" "), truth))
    every = {k: [x for row in scores.values() for x in row[k]] for k in ("main", "get_text")}
    result = {"pages": len(pages), "f1_main": round(float(np.mean(every["main"])), 4),
              "f1_get_text": round(float(np.mean(every["get_text"])), 4)}
    for kind, row in scores.items():
        result[kind] = {"pages": len(row["main"]), "f1_main": round(float(np.mean(row["main"])), 4),
                        "f1_get_text": round(float(np.mean(row["get_text"])), 4)}
    return result


def pydoc_page(name: str) -> tuple[str, str]:
    """(pydoc.HTMLDoc's page of the module, its main text: the same documentation as pydoc's own
    plain-text rendering (what help() prints), without what only the text has (its first line, the
    MODULE REFERENCE section, the capitalised section titles, the ``|`` rules that frame a class)
    or what is a link in HTML (the FILE section)."""
    import importlib
    import pydoc

    module = importlib.import_module(name)
    doc = pydoc.HTMLDoc()
    page = doc.page(pydoc.describe(module), doc.document(module, name))
    text = pydoc.render_doc(module, "%s", renderer=pydoc.plaintext)
    text = re.sub(r"(^|\n)(MODULE REFERENCE|FILE)\n.*?(?=\n\n[A-Z]|$)", "\n", text.split("\n", 1)[1], flags=re.S)
    text = re.sub(r"(^|\n)[A-Z][A-Z ]+\n", "\n", text)
    return page, " ".join(t for t in text.split() if t != "|")


# -- 7. workers -------------------------------------------------------------------------------
def bench_workers(n_originals: int, repeats: int, workers: int = 2) -> dict:
    """docs/s of a whole process job (dedup + split) on the planted corpus as jsonl, with ``workers``
    processes vs one, and whether both wrote the same data.jsonl."""
    from apt_data import pipeline
    from apt_data.spec import ProcessSpec
    from apt_model.store import Store
    from apt_model.testing import JobRecorder

    texts = sample_data.planted_corpus(n_originals, n_originals // 20, n_originals // 10, seed=0,
                                       jaccard=NEAR_JACCARD).documents
    pipeline.SHARD_BYTES = 512 << 10
    times: dict[int, list[float]] = {1: [], workers: []}
    data: dict[int, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "planted.jsonl"
        path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
        pieces = len(pipeline.plan([path], pipeline.SHARD_BYTES))
        for k in range(repeats):
            for n in (1, workers):
                spec = ProcessSpec(name=f"w{n}-{k}", paths=(str(path),), dedup=True, eval_fraction=0.05, workers=n)
                store = Store(Path(tmp) / "home")
                start = time.perf_counter()
                pipeline.run_process(store, spec, [path], JobRecorder(), 1 << 34)
                times[n].append(time.perf_counter() - start)
                data[n] = (store.dataset(spec.name).path / "data.jsonl").read_bytes()
    rate = {n: round(len(texts) / median(t), 1) for n, t in times.items()}
    return {"documents": len(texts), "input_mb": round(sum(len(t.encode()) for t in texts) / 2**20, 1),
            "pieces": pieces,
            "docs_per_s_1": rate[1], f"docs_per_s_{workers}": rate[workers],
            "ratio": round(rate[workers] / rate[1], 2), "same_data_jsonl": data[1] == data[workers]}


# -- 6. split -----------------------------------------------------------------------------------
def bench_split(n_originals: int) -> dict:
    from apt_data.pipeline import in_eval
    from apt_data.spec import ProcessSpec

    texts = sample_data.planted_corpus(n_originals, 0, n_originals // 5, seed=3).documents
    index = dedup.NearDuplicateIndex(THRESHOLD, 128, text_of=texts.__getitem__)
    found = index.add(texts)
    pairs = [(i, m) for i, (m, _) in enumerate(found) if m >= 0]
    spec = ProcessSpec(name="x", paths=("x",), eval_fraction=0.2, seed=7)
    rng = random.Random(7)
    random_side = [rng.random() < 0.2 for _ in texts]
    family = index.families.find
    return {"near_duplicate_pairs": len(pairs),
            "across_family_split": sum(in_eval(family(a), spec) != in_eval(family(b), spec) for a, b in pairs),
            "across_random_split": sum(random_side[a] != random_side[b] for a, b in pairs)}


ROWS = ("minhash", "csv", "code", "encodings", "html", "split", "workers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small corpora (a few seconds each)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--csv-mb", type=int, default=20, help="size of the generated CSV (the issue's is 100)")
    parser.add_argument("--originals", type=int, default=20000,
                        help="original documents of the planted corpus (+5%% exact, +10%% near copies)")
    parser.add_argument("--only", default=",".join(ROWS), help=f"comma-separated rows to run (of {', '.join(ROWS)}); "
                        "the saved results keep the other rows of the last run")
    parser.add_argument("--job", nargs=3, help=argparse.SUPPRESS)  # internal: one CSV job in a fresh process
    args = parser.parse_args()
    if args.job:
        return run_job(*args.job)
    if args.quick:
        args.csv_mb, args.originals, args.repeats = 2, 800, 1
    rows = [r for r in args.only.split(",") if r]
    if set(rows) - set(ROWS):
        parser.error(f"unknown rows {sorted(set(rows) - set(ROWS))}; choose from {', '.join(ROWS)}")
    print(machine())
    previous = ROOT / "bench" / "results" / "data.json"
    data = json.loads(previous.read_text()) if previous.is_file() and not args.quick else {}
    data.pop("machine", None)
    data.setdefault("settings_per_row", {})
    for row in rows:
        started = time.perf_counter()
        data[row] = RUNNERS[row](args)
        data["settings_per_row"][row] = {**vars(args), "seconds": round(time.perf_counter() - started, 1),
                                         "date": time.strftime("%Y-%m-%d")}
    data.pop("settings", None)
    print("saved", save("data-quick" if args.quick else "data", data))


def _minhash(args) -> dict:
    m = bench_minhash(args.originals, 128, args.repeats)
    print(f"minhash  {m['documents']} docs, {m['true_duplicates']} true duplicates: ours recall {m['ours']['recall']} "
          f"precision {m['ours']['precision']} {m['ours']['docs_per_s']} docs/s | datasketch recall "
          f"{m['datasketch']['recall']} precision {m['datasketch']['precision']} {m['datasketch']['docs_per_s']} docs/s | "
          f"{m['speedup_vs_datasketch']}x ({m['speedup_unconfirmed']}x unconfirmed) "
          f"[{verdict(min(m['ours']['recall'], m['ours']['precision']), 0.95, True)} quality, "
          f"{verdict(m['speedup_vs_datasketch'], 2.0, True)} speed]", flush=True)
    return m


def _csv(args) -> dict:
    c = bench_csv(args.csv_mb, args.repeats)
    print(f"csv      {c['csv_mb']} MB: pipeline {c['pipeline']} vs pandas+ftfy {c['pandas_ftfy']}: "
          f"{c['throughput_x']}x throughput [{verdict(c['throughput_x'], 2.0, True)}], "
          f"{c['rss_ratio']}x peak RSS [{verdict(c['rss_ratio'], 0.5, False)}], "
          f"{c['growth_ratio']}x RSS growth during the job", flush=True)
    return c


def _code(args) -> dict:
    k = bench_code()
    print(f"code     {k['identical_ast']}/{k['files_that_compile']} identical AST "
          f"[{verdict(k['identical_share'], 1.0, True)}]", flush=True)
    return k


def _encodings(args) -> dict:
    e = bench_encodings(50 if args.quick else 200)
    print(f"encoding recovered exactly: {e} [{verdict(min(e.values()), 0.99, True)}]", flush=True)
    return e


def _html(args) -> dict:
    h = bench_html(50 if args.quick else 200, PYDOC_MODULES[:5] if args.quick else PYDOC_MODULES)
    ok = verdict(h["f1_main"], 0.9, True) if h["f1_main"] > h["f1_get_text"] else "MISS"
    print(f"html     {h['pages']} pages: F1 main {h['f1_main']} vs get_text {h['f1_get_text']} [{ok}]; "
          f"templates {h['template']}, pydoc {h['pydoc']}", flush=True)
    return h


def _split(args) -> dict:
    s = bench_split(args.originals // 2)
    print(f"split    {s['near_duplicate_pairs']} near-dup pairs: {s['across_family_split']} across the family split, "
          f"{s['across_random_split']} across a random split [{verdict(-s['across_family_split'], 0, True)}]", flush=True)
    return s


def _workers(args) -> dict:
    w = bench_workers(args.originals, args.repeats)
    print(f"workers  {w['documents']} docs ({w['input_mb']} MB, {w['pieces']} pieces): {w['docs_per_s_1']} docs/s with 1, "
          f"{w['docs_per_s_2']} with 2 = {w['ratio']}x; same data.jsonl: {w['same_data_jsonl']}", flush=True)
    return w


RUNNERS = {"minhash": _minhash, "csv": _csv, "code": _code, "encodings": _encodings, "html": _html,
           "split": _split, "workers": _workers}


if __name__ == "__main__":
    main()
