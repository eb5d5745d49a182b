"""Pure logic of matview_refresh: names, topological order, concurrency legality, back-off."""

import pytest

from ansible_collections.pgops.deploy.plugins.module_utils import pgops_matview as mv

GOOD = dict(index_name="u", is_unique=True, is_valid=True, is_ready=True, is_immediate=True,
            has_predicate=False, has_expressions=False, access_method="btree")


def test_parse_name_defaults_to_public_and_folds_case():
    assert mv.parse_name("Sales_MV") == ("public", "sales_mv")
    assert mv.parse_name("rep.mv") == ("rep", "mv")
    assert mv.parse_name('"Rep"."My.View"') == ("Rep", "My.View")
    assert mv.parse_name('"we""ird"') == ("public", 'we"ird')
    with pytest.raises(mv.MatviewError):
        mv.parse_name("a.b.c")
    with pytest.raises(mv.MatviewError):
        mv.parse_name('"open')


def test_display_name_quotes_only_when_needed():
    assert mv.display_name("public", "mv_a") == "public.mv_a"
    assert mv.display_name("Rep", "x") == '"Rep".x'


def test_toposort_dependencies_first_with_stable_ties():
    edges = {"b": ["a"], "c": ["b"], "d": []}
    order, cyclic = mv.toposort(["c", "d", "b", "a"], edges)
    assert order == ["a", "b", "c", "d"] and cyclic == []


def test_toposort_diamond_and_ignores_outside_edges():
    edges = {"top": ["left", "right"], "left": ["base", "outside"], "right": ["base"]}
    order, _ = mv.toposort(["top", "left", "right", "base"], edges)
    assert order.index("base") < order.index("left") < order.index("top")
    assert order.index("right") < order.index("top")


def test_toposort_survives_a_cycle():
    order, cyclic = mv.toposort(["x", "y", "z"], {"x": ["y"], "y": ["x"], "z": []})
    assert order == ["z", "x", "y"] and cyclic == ["x", "y"]


def test_dependants_closure_is_transitive():
    edges = {"b": {"a"}, "c": {"b"}, "d": {"x"}}
    assert mv.dependants_closure(["a"], edges) == {"a", "b", "c"}


def test_concurrency_legal_with_plain_unique_btree():
    ok, idx, reason = mv.concurrency_decision(True, [dict(GOOD, is_unique=False, index_name="nu"), GOOD])
    assert ok and idx == "u" and reason is None


@pytest.mark.parametrize("populated,override,needle", [
    (False, {}, "not populated"),
    (True, {"is_unique": False}, "no unique index"),
    (True, {"has_expressions": True}, "uses expressions"),
    (True, {"has_predicate": True}, "partial"),
    (True, {"is_valid": False}, "invalid"),
    (True, {"is_ready": False}, "not ready"),
    (True, {"is_immediate": False}, "deferrable"),
    (True, {"access_method": "hash"}, "not a btree"),
])
def test_concurrency_illegal_cases_name_the_reason(populated, override, needle):
    ok, idx, reason = mv.concurrency_decision(populated, [dict(GOOD, **override)])
    assert not ok and idx is None and needle in reason


def test_plan_methods_auto_never():
    views = [dict(name="a", concurrent_ok=True, reason=None), dict(name="b", concurrent_ok=False, reason="r")]
    fallbacks = mv.plan_methods(views, "auto")
    assert [v["method"] for v in views] == ["concurrent", "plain"] and fallbacks == [views[1]]
    assert views[1]["fallback_reason"] == "r"
    assert mv.plan_methods(views, "never") == [] and [v["method"] for v in views] == ["plain", "plain"]


def test_backoff_doubles_and_caps():
    assert [mv.backoff_delay(n, 0.5) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert mv.backoff_delay(20, 1.0, cap=60) == 60
