"""Run ``adele ARGS`` and SIGKILL the process at one chosen moment (fault injection lives here, in the tests only).

    python tests/engine/crashrun.py POINT:EPOCH train --data ... --out ...

Points: ``batch`` (mid-epoch: when epoch EPOCH asks for its second batch), ``correction``
(predictions stored, the round's labels not yet saved), ``checkpoint`` (the temporary
checkpoint of epoch EPOCH written, not yet renamed).
"""
import os
import signal
import sys

import adele.run.files as run_files
from adele.cli import main
from adele.engine.method import AdeleState
from adele.engine.trainer import Trainer


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str, epoch: int) -> None:
    if point == "batch":
        loader = Trainer.loader

        def killing_loader(self, e):
            batches = loader(self, e)
            if e != epoch:
                return batches

            def gen():
                for k, batch in enumerate(batches):
                    if k == 1:
                        _kill()
                    yield batch
            return gen()

        Trainer.loader = killing_loader
    elif point == "correction":
        correction_round = AdeleState.correction_round

        def killing_round(self, e, *args, **kw):
            if e == epoch:  # the round's predictions get stored; saving its labels kills the process
                run_files.save_labels = lambda *a, **k: _kill()
            return correction_round(self, e, *args, **kw)

        AdeleState.correction_round = killing_round
    elif point == "checkpoint":
        save = run_files.atomic_save
        target = run_files.checkpoint_path

        def killing_save(obj, path, before_replace=None):
            if os.path.basename(str(path)) == os.path.basename(str(target(".", epoch))):
                before_replace = _kill
            save(obj, path, before_replace)

        run_files.atomic_save = killing_save
    else:
        raise SystemExit(f"unknown crash point {point!r}")


if __name__ == "__main__":
    name, at = sys.argv[1].split(":")
    install(name, int(at))
    raise SystemExit(main(sys.argv[2:]))
