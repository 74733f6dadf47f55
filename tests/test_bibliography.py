"The bibliography page: every citation in the book has an entry, and every citation links to it."
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]/'tools'))
import cite  # noqa: E402


def test_every_citation_has_an_entry():
    assert cite.check() == [], "cited but missing from nbs/bibliography.ipynb"


def test_every_known_citation_is_a_link():
    known = cite.entries()
    plain = [f'{p.name}: {t}' for p in cite.notebooks() for src in cite.markdown(p)
             if not src.lstrip().startswith('#| export')
             for _, _, t, _ in cite.citations(src, known)]
    assert plain == [], "run `python tools/cite.py --link`"


def test_links_point_at_existing_anchors():
    import re
    known = cite.entries()
    bad = [f'{p.name}: #{k}' for p in cite.notebooks() for src in cite.markdown(p)
           for k in re.findall(r'\(bibliography\.ipynb#([a-z0-9]+)\)', src) if k not in known]
    assert bad == []


@pytest.mark.parametrize('text,keys', [
    ('as (Burda et al. 2015) showed', ['burdaetal2015']),
    ('Kingma & Welling (2014, App. B)', ['kingmawelling2014']),
    ('see Cremer et al.\n2018 and White (2016).', ['cremeretal2018', 'white2016']),
    ('in 2016 the $x 2019$ and `Smith 2020`', []),
    ('[Bishop 2006](bibliography.ipynb#bishop2006)', []),  # already linked
])
def test_citation_pattern(text, keys):
    assert [k for *_, k in cite.citations(text)] == keys


def test_a_partial_parenthesis_links_the_name_only():
    (s, e, t, k), = cite.citations('Kingma & Welling (2014, eq. 3)')
    assert t == 'Kingma & Welling' and k == 'kingmawelling2014'
