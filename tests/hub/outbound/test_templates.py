"""Message templates: per-channel variants, strict variables, escaping, the sandbox, loading."""

from __future__ import annotations

import pytest

from hub.outbound.templates import TemplateProblem, TemplateSet, template_values

TEMPLATES = {
    "shipped": {
        "sms": "{{ profile.display_name }}님, 주문 {{ order }} 발송",
        "email": {"subject": "주문 {{ order }}", "text": "주문 {{ order }}", "html": "<p>{{ note }}</p>"},
    },
    "hello": {"default": "hello {{ name }}"},
}


def test_each_channel_gets_its_variant_and_others_the_default():
    ts = TemplateSet(TEMPLATES)
    values = template_values({"order": "A-1", "note": "<b>fragile</b>"}, {"display_name": "김민지"}, None)
    assert ts.render("shipped", "sms", values).text == "김민지님, 주문 A-1 발송"
    email = ts.render("shipped", "email", values)
    assert (email.subject, email.text) == ("주문 A-1", "주문 A-1")
    assert email.html == "<p>&lt;b&gt;fragile&lt;/b&gt;</p>"  # html is escaped, text parts are not
    assert ts.render("hello", "fax", {"name": "<x>"}).text == "hello <x>"
    assert ts.carries("hello", "fax") and ts.carries("shipped", "sms") and not ts.carries("shipped", "fax")


def test_a_missing_variable_is_named_not_sent_blank():
    with pytest.raises(TemplateProblem) as caught:
        TemplateSet(TEMPLATES).render("shipped", "sms", {"profile": {"display_name": "x"}})
    assert caught.value.field == "variables"
    assert "'order' is undefined" in caught.value.message


def test_unknown_template_and_missing_variant_are_refused():
    ts = TemplateSet(TEMPLATES)
    with pytest.raises(TemplateProblem, match="no template 'nope'; known: hello, shipped"):
        ts.render("nope", "sms", {})
    with pytest.raises(TemplateProblem, match="no 'fax' or default variant"):
        ts.render("shipped", "fax", {"order": 1})


def test_the_sandbox_keeps_templates_out_of_python_internals():
    ts = TemplateSet({"evil": {"default": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}})
    with pytest.raises(TemplateProblem) as caught:
        ts.render("evil", "sms", {})
    assert caught.value.field == "template"


@pytest.mark.parametrize("definition, where", [
    ({"t": {"sms": "{{ unclosed"}}, "templates.t.sms.text"),
    ({"t": {"sms": {"subject": "only a subject"}}}, "templates.t.sms"),
    ({"t": {"sms": {"txt": "typo"}}}, "templates.t.sms"),
    ({"t": "not a mapping"}, "templates.t"),
])
def test_a_bad_definition_stops_loading_and_names_where(definition, where):
    with pytest.raises(TemplateProblem) as caught:
        TemplateSet(definition)
    assert caught.value.field == where


def test_templates_load_from_a_directory_and_a_name_defined_twice_is_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("welcome:\n  sms: 'hi {{ name }}'\n", encoding="utf-8")
    (tmp_path / "b.yml").write_text("bye:\n  default: 'bye'\n", encoding="utf-8")
    ts = TemplateSet.load({"inline": {"default": "x"}}, str(tmp_path))
    assert ts.names() == ["bye", "inline", "welcome"]
    (tmp_path / "c.yaml").write_text("welcome:\n  sms: 'again'\n", encoding="utf-8")
    with pytest.raises(TemplateProblem, match="defined twice"):
        TemplateSet.load({}, str(tmp_path))
    with pytest.raises(TemplateProblem, match="not a directory"):
        TemplateSet.load({}, str(tmp_path / "missing"))
