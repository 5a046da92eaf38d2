"""CleanText strategies: the before/after examples of the README, and code left meaning the same."""

from __future__ import annotations

import ast
import sysconfig
from pathlib import Path

import pytest

from apt_model import errors

from apt_data.clean import aggressive, basic, chinese, cleaner, code


def test_basic_repairs_mojibake_and_squeezes_whitespace():
    assert basic("The cafÃ©  is\u200b open.\r\n\r\n\r\n\x07Next   line ") == "The café is open.\n\nNext line"


def test_aggressive_types_personal_data_and_drops_boilerplate():
    before = ("Mail jane.doe@example.com or call +1 555-123-4567.\nSee https://example.com/a?b=1 from 10.0.0.1\n"
              "<div>Hello</div>\nHello\nAll rights reserved 2026")
    assert aggressive(before) == "Mail <EMAIL> or call <PHONE>.\nSee <URL> from <IP>\nHello"


def test_chinese_half_width_ascii_keeps_cjk_punctuation_and_joins_characters():
    assert chinese("ＡＰＴ　模型 训练，很 好！ＧＰＵ") == "APT 模型训练，很好！GPU"
    assert chinese("機器學習", traditional_to_simplified=True) == "机器学习"


def test_code_touches_only_line_ends_trailing_space_and_bom():
    before = "\ufeffdef f(x):\r\n    return \u201cx\u201d  \r\n"
    assert code(before) == "def f(x):\n    return \u201cx\u201d\n"


def _stdlib_files(limit: int) -> list[Path]:
    return sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:limit]


@pytest.mark.parametrize("path", _stdlib_files(60), ids=lambda p: p.name)
def test_code_strategy_keeps_the_ast_of_stdlib_files(path):
    source = path.read_text(encoding="utf-8")
    try:
        before = ast.dump(ast.parse(source))
    except SyntaxError:
        pytest.skip("does not compile as it is")
    assert ast.dump(ast.parse(code(source))) == before


def test_unknown_strategy_names_the_ones_there_are():
    with pytest.raises(errors.InvalidArgument, match="aggressive, basic, chinese, code"):
        cleaner("fancy")


def test_code_keeps_trailing_space_inside_multiline_strings():
    before = 'def f():\n    """Doc.   \n    more"""   \n    return 1\t\n'
    assert code(before) == 'def f():\n    """Doc.   \n    more"""\n    return 1\n'


def test_basic_skips_ftfy_only_where_ftfy_would_change_nothing(sample_files):
    import ftfy

    from apt_data.sample_data import mojibake, short_documents

    texts = short_documents()[::7]
    texts += [mojibake(t) for t in texts[::5]]
    texts += ["Tom &amp; Jerry", "plain ascii\r\nline\x0c", "\x1b[31mred\x1b[0m text", "the \ufb01rst", "e\u0301t\u00e9",
              "caf\u00c3\u00a9 au lait", "line\u2028break", "\u6a5f\u5668 &lt;b&gt;"]
    for text in texts:
        via_ftfy = basic(ftfy.fix_text(text, normalization="NFC", fix_character_width=False, uncurl_quotes=False))
        assert basic(text) == via_ftfy, text
