"""The output folder of ``compare`` and ``reproduce``: checked first, written as work finishes.

:class:`OutputFolder` makes three promises to the command line:

* **checked before computing**: the folder is created and a file is written
  and removed in it before any training, so an unwritable ``--out`` fails in
  the first second, not after the computation;
* **never mixed silently**: a folder that holds an earlier run's files is
  refused unless ``--resume`` (continue that run: its finished units are
  kept and skipped, and the settings must be the same) or ``--overwrite``
  (the earlier run's files are removed first) is given;
* **written as work finishes, atomically**: every file is written to a
  temporary name in the same folder and renamed over the old one
  (:func:`os.replace`), and the manifest ``sklottery_run.json`` records
  which units (data sets, experiments) are done, so a killed or interrupted
  command leaves a consistent folder that ``--resume`` continues.
"""

from __future__ import annotations

import json
import os
import time

__all__ = ["OutputFolder", "atomic_write", "MANIFEST"]

#: The manifest of a run, in its output folder.
MANIFEST = "sklottery_run.json"


def atomic_write(path, data):
    """Write ``data`` (str or bytes) to ``path`` all at once (temporary file + rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    mode, kwargs = ("wb", {}) if isinstance(data, bytes) else ("w", {"encoding": "utf-8"})
    try:
        with open(tmp, mode, **kwargs) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


class OutputFolder:
    """A command's output folder (see the module docstring).

    Parameters
    ----------
    path : str
    command : str
        ``'compare'`` or ``'reproduce'`` (a run of one cannot be resumed by the
        other).
    settings : dict
        What determines the results (JSON-serialisable); ``--resume`` needs
        the same.
    known_files : callable
        ``known_files(names)`` -> file names this command writes for the
        units ``names`` (and ``None``: the files of every run); used to
        recognise an earlier run without a manifest and to remove its files.
    resume, overwrite : bool

    Raises
    ------
    SystemExit
        With a message naming the problem and the fix, before any computing:
        the folder cannot be written, or holds an earlier run and neither
        ``resume`` nor ``overwrite`` was given, or ``resume`` was given with
        other settings.
    """

    def __init__(self, path, command, settings, known_files, *, resume=False,
                 overwrite=False):
        if resume and overwrite:
            raise SystemExit("--resume and --overwrite exclude each other: continue the "
                             "earlier run, or replace it.")
        self.path = path
        self.command = command
        self.settings = settings
        self._known_files = known_files
        self.manifest = None
        self._prepare(resume, overwrite)

    # ------------------------------------------------------------------ setup
    def _fail(self, what, exc):
        raise SystemExit(f"cannot use --out {self.path!r}: {what} ({type(exc).__name__}: "
                         f"{exc}). Choose a folder you can write to.") from None

    def _prepare(self, resume, overwrite):
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as exc:
            self._fail("the folder cannot be created", exc)
        if not os.path.isdir(self.path):
            raise SystemExit(f"cannot use --out {self.path!r}: it is a file, not a folder.")
        earlier = self._read_manifest()
        leftovers = [f for f in self._known_files(None)
                     if os.path.exists(os.path.join(self.path, f))]
        if earlier is not None or leftovers:
            self._earlier_run(earlier, leftovers, resume, overwrite)
        elif resume:
            print(f"--resume: {self.path} holds no earlier run; starting a new one.",
                  flush=True)
        if self.manifest is None:
            self.manifest = {"command": self.command, "settings": self.settings,
                             "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                             "units": {}}
        # a real write (and removal) now, not after the computation
        probe = os.path.join(self.path, f".sklottery-write-test-{os.getpid()}")
        try:
            atomic_write(probe, "ok\n")
            os.remove(probe)
        except OSError as exc:
            self._fail("a test file cannot be written there", exc)
        self._save_manifest()

    def _read_manifest(self):
        path = os.path.join(self.path, MANIFEST)
        if not os.path.exists(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--out {self.path!r} holds an unreadable {MANIFEST} ({exc}); "
                             "pass --overwrite to replace the folder's run.") from None

    def _earlier_run(self, earlier, leftovers, resume, overwrite):
        if earlier is not None:
            units = earlier.get("units", {})
            done = [u for u, rec in units.items() if rec.get("status") == "complete"]
            what = (f"the {earlier.get('command', '?')} run started "
                    f"{earlier.get('started', '?')} ({len(done)} of {len(units)} units done: "
                    f"{', '.join(done) or 'none'})")
        else:
            what = (f"files of an earlier run without a manifest "
                    f"({', '.join(sorted(leftovers)[:6])}{' ...' if len(leftovers) > 6 else ''})")
        if overwrite:
            files = set(leftovers)
            if earlier is not None:
                for rec in earlier.get("units", {}).values():
                    files.update(rec.get("files", []))
                files.update(earlier.get("files", []))
                files.add(MANIFEST)
            for f in sorted(files):
                try:
                    os.remove(os.path.join(self.path, f))
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    self._fail(f"the earlier run's file {f} cannot be removed", exc)
            print(f"--overwrite: removed {len(files)} file(s) of {what} from {self.path}.",
                  flush=True)
            return
        if not resume:
            raise SystemExit(
                f"--out {self.path!r} already holds {what}. Pass --resume to continue it "
                "(finished units are kept and skipped), --overwrite to replace it, or choose "
                "another folder.")
        if earlier is None:
            raise SystemExit(f"--resume: {self.path!r} holds {what}, which cannot be "
                             "resumed; pass --overwrite to replace it.")
        if earlier.get("command") != self.command:
            raise SystemExit(f"--resume: {self.path!r} holds a {earlier.get('command')!r} "
                             f"run, not a {self.command!r} one.")
        before, now = earlier.get("settings", {}), self.settings
        differ = {k: (before.get(k), now.get(k)) for k in sorted(set(before) | set(now))
                  if _as_saved(before.get(k)) != _as_saved(now.get(k))}
        if differ:
            listed = "; ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in differ.items())
            raise SystemExit(f"--resume: the earlier run in {self.path!r} used other settings "
                             f"({listed}). Resume with the same settings, or pass "
                             "--overwrite to start again.")
        self.manifest = earlier
        print(f"--resume: continuing {what}.", flush=True)

    # ------------------------------------------------------------------ state
    def _save_manifest(self):
        atomic_write(os.path.join(self.path, MANIFEST),
                     json.dumps(self.manifest, indent=1, sort_keys=True, default=str) + "\n")

    def done(self, unit):
        """Whether ``unit`` finished in this or an earlier (resumed) run."""
        return self.manifest["units"].get(unit, {}).get("status") == "complete"

    def unit(self, unit):
        """The manifest record of ``unit`` (empty if none)."""
        return self.manifest["units"].get(unit, {})

    def write(self, name, data):
        """Write one file of the run (atomically) and list it in the manifest."""
        atomic_write(os.path.join(self.path, name), data)
        files = self.manifest.setdefault("files", [])
        if name not in files:
            files.append(name)
            self._save_manifest()

    def finish_unit(self, unit, status, files=(), **info):
        """Record ``unit`` as ``'complete'`` or ``'interrupted'`` (with its files)."""
        self.manifest["units"][unit] = {"status": status, "files": list(files),
                                        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                                        **info}
        self._save_manifest()

    def finish(self, status):
        """Record how the whole run ended (``'complete'`` or ``'interrupted'``)."""
        self.manifest["status"] = status
        self.manifest["ended"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        self._save_manifest()


def _as_saved(value):
    """A setting as the manifest's JSON holds it (tuples as lists); empty as absent."""
    value = json.loads(json.dumps(value, sort_keys=True, default=str))
    return None if value in ({}, [], "") else value
