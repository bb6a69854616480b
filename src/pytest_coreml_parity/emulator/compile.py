"""The compiling engine: a straight-line block as one Python function, made once.

The interpreter (:func:`.interpret.run_block`) looks every value up in a dict and
builds a keyword dict per op. For a block without control flow, all of that is
known when planning, so we generate the equivalent function: values live in
local variables, constants are bound names, and each op is one direct kernel
call, one rounding call and one inline shape comparison. Semantics are identical to
the interpreter (the tests run both); only the bookkeeping is gone.

Blocks containing control flow (``cond``, ``while_loop``) stay interpreted; their
nested blocks without control flow of their own are compiled too
(:func:`compile_nested`): a value such a block reads from an enclosing block is
loaded from the shared environment by name at entry, where the interpreter of the
enclosing block put it. Failures go through the same
:func:`.checks.kernel_failure` as the interpreter's.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Iterator
from typing import Any

from .checks import check_shape, kernel_failure, wrong_output_count
from .plan import BlockPlan, Step
from .registry import Value

#: ``fn(env, inputs, record) -> outputs``; with ``record`` every value is also put in ``env``.
CompiledBlock = Callable[[dict[str, Value], tuple[Value, ...], bool], list[Value]]


def compile_block(block: BlockPlan) -> CompiledBlock | None:
    """A compiled runner for ``block``, or None when it must stay interpreted."""
    if any(step.control_flow for step in block.steps):
        return None
    if not all(_identifier(key) for step in block.steps for key in step.input_names):
        return None
    return _Codegen(block).build()


#: Compiled nested blocks by ``id`` of their :class:`~.plan.BlockPlan` (the plan that
#: holds the blocks must outlive the mapping; :class:`~.Emulator` keeps both).
NestedBlocks = dict[int, CompiledBlock]


def compile_nested(block: BlockPlan) -> NestedBlocks:
    """Every block nested (at any depth) in ``block`` that compiles, by ``id``."""
    return {
        id(inner): fn for inner in _nested_blocks(block) if (fn := compile_block(inner)) is not None
    }


def _nested_blocks(block: BlockPlan) -> Iterator[BlockPlan]:
    for step in block.steps:
        for inner in step.ctx.blocks:
            yield inner
            yield from _nested_blocks(inner)


def _identifier(key: str) -> bool:
    return key.isidentifier() and not keyword.iskeyword(key)


class _Codegen:
    def __init__(self, block: BlockPlan) -> None:
        self.block = block
        self.names: dict[str, str] = {}  # MIL var name -> local variable
        self.namespace: dict[str, Any] = {  # exec globals: values of every kind
            "check_shape": check_shape,
            "kernel_failure": kernel_failure,
            "wrong_output_count": wrong_output_count,
            "STEPS": block.steps,
        }
        self.lines: list[str] = []

    def local(self, var: str) -> str:
        if var not in self.names:
            self.names[var] = f"v{len(self.names)}"
        return self.names[var]

    def bind(self, value: object) -> str:
        name = f"K{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def operand(self, kind: str, payload: Value) -> str:
        return self.local(payload) if kind == "ref" else self.bind(payload)

    def emit(self, line: str, indent: int = 2) -> None:
        self.lines.append("    " * indent + line)

    def build(self) -> CompiledBlock:
        block = self.block
        inputs = [self.local(name) for name in block.inputs]
        for index, step in enumerate(block.steps):
            self.step(index, step)
        outputs = ", ".join(self.operand(kind, payload) for kind, payload in block.outputs)
        produced = set(block.inputs) | {var for step in block.steps for var in step.outputs}
        # Values of an enclosing block (a nested block reads them by name).
        outer = [(var, local) for var, local in self.names.items() if var not in produced]
        record = ", ".join(f"{var!r}: {local}" for var, local in self.names.items() if var in produced)
        head = [
            "def run(env, inputs, record):",
            "    i = -1",
            "    try:",
        ]
        if inputs:
            head.append(f"        ({', '.join(inputs)},) = inputs")
        head.extend(f"        {local} = env[{var!r}]" for var, local in outer)
        if not inputs and not outer and not self.lines:  # no inputs and no steps (every op was a materialized const)
            head.append("        pass")
        tail = [
            "    except Exception as exc:",
            "        failure = kernel_failure(STEPS[i].ctx, exc)",
            "        if failure is exc:",
            "            raise",
            "        raise failure from exc",
            "    if record:",
            f"        env.update({{{record}}})",
            f"    return [{outputs}]",
        ]
        source = "\n".join(head + self.lines + tail) + "\n"
        exec(compile(source, "<emulator block>", "exec"), self.namespace)
        run: CompiledBlock = self.namespace["run"]
        return run

    def step(self, index: int, step: Step) -> None:
        args = [self.bind(step.ctx)]
        for key, value in step.consts.items():
            args.append(f"{key}={self.bind(value)}")
        for key, var in step.refs:
            args.append(f"{key}={self.local(var)}")
        for key, items in step.tuples:
            parts = [self.operand(kind, payload) for kind, payload in items]
            args.append(f"{key}=({', '.join(parts)}{',' if len(parts) == 1 else ''})")
        call = f"{self.bind(step.fn)}({', '.join(args)})"
        self.emit(f"i = {index}")
        if step.single_output:
            out = self.local(step.outputs[0])
            self.emit(f"{out} = {self.bind(step.storers[0])}({call})")
            self.emit_shape_check(index, 0, out, step)
            return
        self.emit(f"r = {call}")
        if len(step.outputs) == 1:  # a single non-tensor output (a list): kept as is
            self.emit(f"{self.local(step.outputs[0])} = r")
            return
        self.emit(f"if not isinstance(r, (tuple, list)) or len(r) != {len(step.outputs)}:")
        self.emit(f"    raise wrong_output_count(STEPS[{index}].ctx)")
        for position, (var, storer) in enumerate(zip(step.outputs, step.storers, strict=True)):
            out = self.local(var)
            if storer is None:
                self.emit(f"{out} = r[{position}]")
                continue
            self.emit(f"{out} = {self.bind(storer)}(r[{position}])")
            self.emit_shape_check(index, position, out, step)

    def emit_shape_check(self, index: int, position: int, out: str, step: Step) -> None:
        shape = step.shapes[position]
        if shape is not None:
            self.emit(f"if {out}.shape != {shape!r}:")  # the fast check; check_shape raises
            self.emit(f"    check_shape(STEPS[{index}], {position}, {out})")
        elif (declared := step.ctx.output_shapes[position]) is not None:
            # Partly symbolic: compare the rank and the static dims inline (check_shape,
            # a call and a generator per op, only raises).
            tests = [f"len(s) != {len(declared)}"]
            tests += [f"s[{axis}] != {dim}" for axis, dim in enumerate(declared) if dim is not None]
            self.emit(f"s = {out}.shape")
            self.emit(f"if {' or '.join(tests)}:")
            self.emit(f"    check_shape(STEPS[{index}], {position}, {out})")
