"""SPICE through pycocoevalcap: when it can run, how to make it run, and the JVM flag newer Javas need.

pycocoevalcap's ``Spice`` runs ``java -jar spice-1.0.jar`` and needs Stanford CoreNLP 3.6.0's two jars in its
``spice/lib`` folder; it downloads them on first use (``get_stanford_models``). The workbench attempts SPICE
whenever Java and the jars can be had:

* the jars missing: one download attempt per process (pycocoevalcap's own fetch); offline it fails at once and
  the metric is reported unavailable with the fix: download the zip on a connected machine and install it with

      python -m workbench.evaluation.spice --install stanford-corenlp-full-2015-12-09.zip

* Java 16+ refuses SPICE's reflective access (``InaccessibleObjectException ... does not "opens java.lang"``);
  the ``java`` launcher reads extra options from ``JDK_JAVA_OPTIONS``, so SPICE runs with
  ``--add-opens java.base/java.lang=ALL-UNNAMED`` there (Java 8 and 11 need nothing).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Optional

CORENLP = "stanford-corenlp-full-2015-12-09"
CORENLP_URL = f"http://nlp.stanford.edu/software/{CORENLP}.zip"
JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
ADD_OPENS = "--add-opens java.base/java.lang=ALL-UNNAMED"
INSTALL_HINT = (f"on a connected machine download {CORENLP_URL} and run `python -m workbench.evaluation.spice --install "
                f"{CORENLP}.zip` here (it copies {JARS[0]} and {JARS[1]} into pycocoevalcap's spice/lib)")
_fetch_failed: Optional[str] = None          # one download attempt per process


def lib_dir() -> Path:
    from pycocoevalcap.spice import spice as spice_module
    return Path(spice_module.__file__).parent / "lib"


def java_major(version_text: str) -> Optional[int]:
    """The major version in ``java -version`` output: '1.8.0_392' -> 8, '17.0.15' -> 17; None if absent."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', version_text)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def java_version() -> Optional[int]:
    if not shutil.which("java"):
        return None
    out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=60)
    return java_major(out.stderr + out.stdout)


def install_jars(zip_path: str | os.PathLike, lib: Optional[Path] = None) -> list:
    """Copy the two CoreNLP jars out of ``stanford-corenlp-full-2015-12-09.zip`` into ``lib`` (default:
    pycocoevalcap's spice/lib); returns the written paths."""
    lib = Path(lib or lib_dir())
    with zipfile.ZipFile(zip_path) as z:
        names = {Path(n).name: n for n in z.namelist()}
        missing = [j for j in JARS if j not in names]
        if missing:
            raise ValueError(f"zip_path={str(zip_path)!r} holds no {', '.join(missing)}; it must be {CORENLP}.zip "
                             f"({CORENLP_URL}).")
        out = []
        for jar in JARS:
            tmp = lib / (jar + ".tmp")
            with z.open(names[jar]) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(tmp, lib / jar)
            out.append(lib / jar)
    return out


def status(fetch: bool = True, lib: Optional[Path] = None) -> tuple:
    """(available, reason). Without the jars, one download attempt per process (``fetch``)."""
    global _fetch_failed
    if java_version() is None:
        return False, "SPICE unavailable: no `java` on PATH (install a JRE, e.g. Debian's default-jre-headless)."
    lib = Path(lib or lib_dir())
    missing = [j for j in JARS if not (lib / j).exists()]
    if missing and fetch and _fetch_failed is None:
        import socket
        from pycocoevalcap.spice.get_stanford_models import get_stanford_models
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(30)
        try:
            with contextlib.redirect_stdout(open(os.devnull, "w")):
                get_stanford_models()
        except Exception as e:                                   # offline: URLError at once
            _fetch_failed = f"{type(e).__name__}: {e}"
        finally:
            socket.setdefaulttimeout(old)
        missing = [j for j in JARS if not (lib / j).exists()]
    if missing:
        why = f" (download failed: {_fetch_failed})" if _fetch_failed else ""
        return False, f"SPICE unavailable: {', '.join(missing)} not in {lib}{why}; {INSTALL_HINT}."
    return True, ""


@contextlib.contextmanager
def jvm_options():
    """Run SPICE's ``java`` with ``--add-opens java.base/java.lang=ALL-UNNAMED`` on Java 16+ (through
    ``JDK_JAVA_OPTIONS``, which the launcher reads); the environment is restored afterwards."""
    major, old = java_version(), os.environ.get("JDK_JAVA_OPTIONS")
    if major is not None and major >= 16 and ADD_OPENS not in (old or ""):
        os.environ["JDK_JAVA_OPTIONS"] = f"{old} {ADD_OPENS}".strip() if old else ADD_OPENS
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("JDK_JAVA_OPTIONS", None)
        else:
            os.environ["JDK_JAVA_OPTIONS"] = old


def compute(gts: dict, res: dict) -> tuple:
    """(SPICE or None, status) on PTB-tokenised ``gts`` / ``res`` (pycocoevalcap's input)."""
    from pycocoevalcap.spice.spice import Spice
    try:
        with jvm_options():
            score, _ = Spice().compute_score(gts, res)
    except (subprocess.CalledProcessError, OSError) as e:
        major = java_version()
        hint = (f" Java {major} runs it with JDK_JAVA_OPTIONS='{ADD_OPENS}'; if it still fails, use Java 8 or 11."
                if major and major >= 16 else "")
        return None, f"SPICE failed: {type(e).__name__}: {e}.{hint}"
    return float(score), "computed"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="SPICE's Stanford CoreNLP jars for pycocoevalcap (offline install).")
    ap.add_argument("--install", metavar="ZIP", help=f"{CORENLP}.zip, downloaded from {CORENLP_URL}")
    args = ap.parse_args(argv)
    if args.install:
        for p in install_jars(args.install):
            print(f"installed {p}")
    ok, reason = status(fetch=False)
    print("SPICE available" if ok else reason)


if __name__ == "__main__":
    main()
