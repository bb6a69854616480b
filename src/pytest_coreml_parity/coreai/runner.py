"""The worker side: runs Core AI programs on coreai-core's interpreter, in its own process.

Started by :class:`.worker.CoreAIWorker` as ``python -m pytest_coreml_parity.coreai.runner
READ_FD WRITE_FD``; it speaks pickled messages over those two pipes with
:class:`multiprocessing.connection.Connection` framing. Its stdout goes to /dev/null (the
interpreter prints "ODIE [default]: Loading function ..." there), its stderr to a file the
parent reads when the process dies.

Requests and replies (tuples)::

    ("run", program_dir, feed)      -> ("ok", {output name: ndarray})
    ("record", program_dir, feed)   -> ("ok", ({op id: [ndarray | None, ...]}, {output: ndarray}))
    ("time", program_dir, feed, n) -> ("ok", [seconds per call] * n)   benchmark: no IPC
    ("open", path)                  -> ("ok", [function names])   any asset dir (probe)
    ("debug", "segfault" | "sleep" | "exit", arg)                    test hooks for the isolation
    any Python exception            -> ("err", type name, message, traceback)

Loaded models are kept (a few, least recently used first out) so repeated calls on one
program do not recompile it. Nothing here is imported by the parent process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
import traceback
from collections import OrderedDict
from contextlib import AsyncExitStack
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from .program import ASSET_NAME

MAX_CACHED_MODELS = 8


class _Loaded:
    def __init__(self, function: Any, stack: AsyncExitStack, extra: Any = None) -> None:
        self.function = function
        self.stack = stack
        self.extra = extra


class Runner:
    """Holds the event loop and the loaded models of one worker process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.models: OrderedDict[tuple[str, str, bytes], _Loaded] = OrderedDict()

    def _key(self, kind: str, directory: str) -> tuple[str, str, bytes]:
        digest = (Path(directory) / ASSET_NAME / "main.hash").read_bytes()
        return kind, str(Path(directory).resolve()), digest

    def _cache(self, key: tuple[str, str, bytes], loaded: _Loaded) -> _Loaded:
        self.models[key] = loaded
        while len(self.models) > MAX_CACHED_MODELS:
            _, old = self.models.popitem(last=False)
            self.loop.run_until_complete(old.stack.aclose())
        return loaded

    def _plain(self, directory: str) -> _Loaded:
        """The program loaded the public way: AIModelAsset.executable() (compiles to ODIX)."""
        key = self._key("run", directory)
        if key in self.models:
            self.models.move_to_end(key)
            return self.models[key]
        from coreai.authoring import AIModelAsset

        asset = AIModelAsset.load(Path(directory) / ASSET_NAME)
        stack = AsyncExitStack()
        model = self.loop.run_until_complete(stack.enter_async_context(asset.executable()))
        return self._cache(key, _Loaded(model.load_function("main"), stack))

    def _debug(self, directory: str) -> _Loaded:
        """The program compiled with debug info, so the intermediate logger can map op ids.

        Private coreai API, isolated here: ``AIModelAsset._write_odix(enable_debug_info=True)``
        is what ``executable()`` calls with debug off on Linux (the public switch,
        ``SpecializationOptions.with_debug``, needs ``SpecializationOptions.default()``,
        which is macOS-only), and ``AIModel._debug_infos`` is what coreai-torch's own
        ``CoreAIInspector`` reads.
        """
        key = self._key("record", directory)
        if key in self.models:
            self.models.move_to_end(key)
            return self.models[key]
        from coreai.authoring import AIModelAsset
        from coreai.runtime import AIModel

        asset = AIModelAsset.load(Path(directory) / ASSET_NAME)
        stack = AsyncExitStack()
        odix = Path(stack.enter_context(tempfile.TemporaryDirectory(suffix=".aimodelx")))
        asset._write_odix(odix, enable_debug_info=True)
        model = self.loop.run_until_complete(AIModel.load(odix))
        return self._cache(key, _Loaded(None, stack, model))

    def run(self, directory: str, feed: dict[str, Any]) -> dict[str, Any]:
        import numpy as np
        from coreai.runtime import NDArray

        function = self._plain(directory).function
        outputs = self.loop.run_until_complete(
            function({name: NDArray(np.ascontiguousarray(value)) for name, value in feed.items()})
        )
        return {name: np.array(value.numpy(), copy=True) for name, value in outputs.items()}

    def time(self, directory: str, feed: dict[str, Any], number: int) -> list[float]:
        """Seconds per interpreter call, ``number`` calls, with no pipe or pickling involved."""
        import numpy as np
        from coreai.runtime import NDArray

        function = self._plain(directory).function
        inputs = {name: NDArray(np.ascontiguousarray(value)) for name, value in feed.items()}
        times = []
        for _ in range(number):
            start = time.perf_counter()
            self.loop.run_until_complete(function(inputs))
            times.append(time.perf_counter() - start)
        return times

    def record(
        self, directory: str, feed: dict[str, Any]
    ) -> tuple[dict[int, list[Any]], dict[str, Any]]:
        import numpy as np
        from coreai_torch.debugging.debug_info import parse_debug_infos
        from coreai_torch.debugging.inspector import CoreAIInspector

        model = self._debug(directory).extra
        records = parse_debug_infos(model._debug_infos)
        op_ids: list[int | str] = sorted(CoreAIInspector.get_all_compile_identifiers(records))
        inspector = CoreAIInspector(model=model, function_name="main")
        values = self.loop.run_until_complete(
            inspector.get_intermediates_for_ops(
                op_ids, {k: np.ascontiguousarray(v) for k, v in feed.items()}
            )
        )
        found = {
            int(op_id): [None if a is None else np.array(a, copy=True) for a in arrays]
            for op_id, arrays in values.items()
            if arrays
        }
        outputs = {k: np.array(v, copy=True) for k, v in (inspector.last_outputs or {}).items()}
        return found, outputs

    def open(self, path: str) -> list[str]:
        """Load any asset directory the way :meth:`run` does; its function names.

        An ``.mlpackage`` given here kills the process with SIGSEGV (coreai-core 1.0.0b3 on
        Linux), which is why this only ever runs in the worker.
        """
        from coreai.authoring import AIModelAsset

        async def names() -> list[str]:
            async with AIModelAsset.load(Path(path)).executable() as model:
                return list(model.function_names)

        return self.loop.run_until_complete(names())


def _debug(action: str, arg: Any) -> None:
    if action == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif action == "sleep":
        time.sleep(float(arg))
    elif action == "exit":
        os._exit(int(arg))
    else:
        raise ValueError(f"unknown debug action {action!r}")


def serve(incoming: Connection, outgoing: Connection) -> None:
    """Answer requests until the parent closes its end of the pipe."""
    import warnings

    warnings.simplefilter("ignore")  # nobody reads the worker's warnings; replies carry errors
    runner = Runner()
    outgoing.send(("ready", os.getpid()))
    while True:
        try:
            request = incoming.recv()
        except (EOFError, OSError):
            return
        try:
            kind = request[0]
            result: Any
            if kind == "run":
                result = runner.run(request[1], request[2])
            elif kind == "time":
                result = runner.time(request[1], request[2], int(request[3]))
            elif kind == "record":
                result = runner.record(request[1], request[2])
            elif kind == "open":
                result = runner.open(request[1])
            elif kind == "ping":
                result = os.getpid()
            elif kind == "debug":
                _debug(request[1], request[2])
                result = None
            else:
                raise ValueError(f"unknown request {kind!r}")
            reply: tuple[Any, ...] = ("ok", result)
        except Exception as exc:
            reply = ("err", type(exc).__name__, str(exc), traceback.format_exc())
        try:
            outgoing.send(reply)
        except (BrokenPipeError, OSError):
            return


def main(argv: list[str]) -> int:
    read_fd, write_fd = int(argv[1]), int(argv[2])
    serve(Connection(read_fd, writable=False), Connection(write_fd, readable=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
