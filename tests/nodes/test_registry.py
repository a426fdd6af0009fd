"""The pack's entrypoint and node schemas: everything defined in nodes/*.py is exported, ids and categories follow
the pack's conventions, and every widget input explains itself with a tooltip."""
from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import pkgutil
from pathlib import Path

import pytest
from comfy_api.v0_0_2 import io

REPO = Path(__file__).resolve().parents[2]
WIDGET_INPUTS = (io.Int.Input, io.Float.Input, io.Combo.Input, io.Boolean.Input)


def entrypoint_nodes() -> list[type[io.ComfyNode]]:
    """The node list ComfyUI gets: the root ``__init__.py`` run as ComfyUI runs it (``comfy_entrypoint``)."""
    spec = importlib.util.spec_from_file_location("videopainter._entrypoint_under_test", REPO / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "videopainter"  # its relative imports resolve inside the pack, as under custom_nodes/
    spec.loader.exec_module(module)
    assert module.WEB_DIRECTORY == "./web"

    async def nodes():
        extension = await module.comfy_entrypoint()
        return await extension.get_node_list()

    return asyncio.run(nodes())


def defined_nodes() -> list[type[io.ComfyNode]]:
    """Every ComfyNode class defined (not imported) in a module of the nodes/ package."""
    import videopainter.nodes as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"videopainter.nodes.{info.name}")
        found += [c for _, c in inspect.getmembers(module, inspect.isclass)
                  if issubclass(c, io.ComfyNode) and c is not io.ComfyNode and c.__module__ == module.__name__]
    return found


NODES = defined_nodes()
# Every node id the pack has published. Saved workflows refer to these: a rename or removal fails here; a new node
# is added to this list on purpose.
FROZEN_NODE_IDS = [
    "VideoPainterApplyBranch", "VideoPainterApplyIDLora", "VideoPainterBackboneLoader", "VideoPainterBranchLoader",
    "VideoPainterComposite", "VideoPainterCompositeVideo", "VideoPainterCutPart", "VideoPainterDecode",
    "VideoPainterDecodeVideo", "VideoPainterEncode", "VideoPainterFirstFrame", "VideoPainterJoinLatents",
    "VideoPainterLoadIDState", "VideoPainterMaskCheck", "VideoPainterMaskPreview", "VideoPainterMetrics",
    "VideoPainterSampler", "VideoPainterSaveIDState", "VideoPainterStyleLora", "VideoPainterTextEncode",
    "VideoPainterTextEncoderLoader", "VideoPainterVideoFrame", "VideoPainterWindowPlan",
]


def test_node_ids_are_frozen():
    ids = {c.define_schema().node_id for c in NODES}
    assert sorted(set(FROZEN_NODE_IDS) - ids) == [], "node ids renamed or removed (saved workflows use them)"
    assert sorted(ids - set(FROZEN_NODE_IDS)) == [], "a new node: add its id to FROZEN_NODE_IDS"


def test_entrypoint_exports_every_node_class_defined_in_nodes():
    exported = entrypoint_nodes()
    assert len(exported) == len(set(exported)), "a node is listed twice"
    missing = sorted(c.__name__ for c in set(NODES) - set(exported))
    assert not missing, f"defined in nodes/ but not registered: {missing}"
    assert set(exported) <= set(NODES), "exports a node that nodes/ does not define"


def test_node_ids_are_unique_and_equal_the_class_names():
    ids = [c.define_schema().node_id for c in NODES]
    assert len(ids) == len(set(ids)), ids
    assert ids == [c.__name__ for c in NODES]  # the id is the class name: a rename shows up in review


@pytest.mark.parametrize("node", NODES, ids=lambda c: c.__name__)
def test_schema_follows_the_conventions(node):
    schema = node.define_schema()
    assert schema.node_id.startswith("VideoPainter"), schema.node_id
    assert schema.category.startswith("videopainter/"), schema.category
    assert schema.display_name and schema.display_name.startswith("VideoPainter "), schema.display_name
    assert node.__doc__ and node.__doc__.strip(), f"{node.__name__} has no class docstring"
    assert schema.description == node.__doc__, "the node's description should be its docstring"
    no_tooltip = [i.id for i in schema.inputs if isinstance(i, WIDGET_INPUTS) and not i.tooltip]
    assert not no_tooltip, f"{schema.node_id}: widget inputs without a tooltip: {no_tooltip}"
    input_ids = {i.id for i in schema.inputs}
    clashing = [o.id for o in schema.outputs if o.id in input_ids]
    assert not clashing, f"{schema.node_id}: output ids equal to input ids (V3 needs them distinct): {clashing}"


def test_the_checks_see_a_missing_tooltip():
    class VideoPainterBad(io.ComfyNode):
        """doc"""

        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="VideoPainterBad", display_name="VideoPainter Bad", category="videopainter/x",
                             description=cls.__doc__, inputs=[io.Int.Input("n")], outputs=[])

    with pytest.raises(AssertionError, match="without a tooltip: \\['n'\\]"):
        test_schema_follows_the_conventions(VideoPainterBad)
