"""Facts about a model's outputs that adapters and detector kinds check against the metadata:
their static dims, which output the metadata names, and the op that makes a head.

Thread: the main thread, while a model is compiled (pure functions over the graph).
"""

from __future__ import annotations

from expressiond.errors import ModelError

# ops that do not change what a head means, skipped when looking for the Softmax/Sigmoid
_PASSTHROUGH = {
    "Convert",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Transpose",
    "Identity",
    "FakeQuantize",
    "Result",
}
HEAD_OPS = {"Softmax": "softmax", "SoftMax": "softmax", "LogSoftmax": "log-softmax", "Sigmoid": "sigmoid"}


def dims(port) -> list[int]:
    shape = port.get_partial_shape()
    if shape.rank.is_dynamic:
        return []
    return [d.get_length() if d.is_static else -1 for d in shape]


def find_output(model, name: str | None, where: str, what: str) -> int:
    if name is None:
        if len(model.outputs) != 1:
            names = ", ".join(sorted(n for o in model.outputs for n in o.get_names()))
            raise ModelError(
                f"{where}: the model has {len(model.outputs)} outputs ({names}); "
                f'name the {what} in the metadata key "output"'
            )
        return 0
    for i, port in enumerate(model.outputs):
        if name in port.get_names():
            return i
    names = ", ".join(sorted(n for o in model.outputs for n in o.get_names()))
    raise ModelError(
        f"{where}: metadata names output {name!r} but the model's outputs are "
        f'{names}; fix "output" in the metadata'
    )


def head_op(model, index: int) -> str | None:
    """The op type that makes output ``index`` (Softmax, Sigmoid, ...), through reshapes."""
    node = model.outputs[index].get_node()
    for _ in range(8):
        kind = node.get_type_name()
        if kind not in _PASSTHROUGH:
            return kind
        if node.get_input_size() == 0:
            return None
        node = node.input_value(0).get_node()
    return None
