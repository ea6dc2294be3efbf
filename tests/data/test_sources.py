"""Parsers of jina_jax.data.sources on small samples written in each source's real format, with
hand-checked expected outputs. ``write_sample_sources`` lays the samples out as a fetched raw
cache, which tests/data/test_starter.py builds a mini starter corpus from."""

from __future__ import annotations

import gzip
import json
import pathlib
import struct
import zlib

import pytest

from jina_jax.data.records import NegationRecord, STSRecord
from jina_jax.data.sources import (
    apt_descriptions,
    deb,
    debian_faq,
    gcide,
    lee,
    manpages,
    negation,
    python_docs,
    sword,
    wordnet,
)

# --------------------------------------------------------------------------- samples

TRANSLATION_EN = """\
Package: foo-tools
Description-md5: 0123456789abcdef0123456789abcdef
Description-en: tools for working with foo archives
 Foo-tools reads, writes and checks foo archives, a compressed
 format used by many backup programs.
 .
 This package contains the command-line tools:
  * foo-pack
  * foo-unpack

Package: foo-tools-doc
Description-md5: 11111111111111111111111111111111
Description-en: documentation for foo-tools
 Foo-tools reads, writes and checks foo archives, a compressed
 format used by many backup programs.
 .
 This package contains the manual.

Package: bar-daemon
Description-md5: 22222222222222222222222222222222
Description-en: background service that watches bar sensors
 The bar daemon polls temperature sensors and records every reading
 in a local database for later inspection.
"""

MAN_PAGE = r""".\" Copyright (C) 2023 Someone
.\" SPDX-License-Identifier: Linux-man-pages-copyleft
.TH frob 3 2023-02-05 "Linux man-pages 6.03"
.SH NAME
frob, frobnicate \- adjust the frobnication level of a stream
.SH SYNOPSIS
.nf
.B #include <frob.h>
.PP
.BI "int frob(FILE *" stream ", int " level );
.fi
.SH DESCRIPTION
The
.BR frob ()
function sets the frobnication level of
.IR stream ,
and returns \fBzero\fP on success \(em or \-1 on error.
.PP
A level of
.I 0
disables frobnication;
see
.BR fcntl (2).
.TP
.B FROB_MAX
The largest level.
.SH RETURN VALUE
Zero.
"""
MAN_STUB = ".so man3/frob.3\n"

WORDNET_NOUN = "".join(
    line + "  \n"  # data lines end in two spaces
    for line in [
        "  1 This software and database is being provided to you, the LICENSEE, by",
        "  2 Princeton University under the following license.",
        '00002000 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 000 | a member of the genus Canis that has been domesticated by man; "the dog barked all night"',
        '00003000 05 n 01 cat 0 000 | feline mammal usually having thick soft fur; "the cat sat"; "curiosity killed the cat" - Proverb',
    ]
)
WORDNET_ADJ = "".join(
    line + "  \n"  # data lines end in two spaces
    for line in [
        "  1 This software and database is being provided to you, the LICENSEE, by",
        '00001740 00 a 01 able 0 001 ! 00002098 a 0101 | (usually followed by `to\') having the necessary means or skill or know-how or authority to do something; "able to swim"; "she was able to program her computer"',
        '00002098 00 a 01 unable 0 001 ! 00001740 a 0101 | (usually followed by `to\') not having the necessary means or skill or know-how; "unable to get to town without a car"',
        '00002312 00 a 02 abaxial 0 dorsal(a) 4 001 ! 00002527 a 0101 | facing away from the axis of an organ or organism; "the abaxial surface of a leaf"',
        "00002527 00 a 01 adaxial 0 001 ! 00002312 a 0101 | nearest to or facing toward the axis of an organ or organism",
    ]
)

GCIDE_ENTRIES = {
    "Able": """Able \\A"ble\\, a. [comp. {Abler}; superl. {Ablest}.] [OF. habile,
   L. habilis that may be easily held.]
   1. Fit; adapted; suitable. [Obs.]
      [1913 Webster]

            A many man, to ben an abbot able.     --Chaucer.
      [1913 Webster]

   2. Having sufficient power, skill, or means to do something;
      competent; qualified; as, a man able to work.
      [1913 Webster]

   Syn: Competent; qualified; fitted.
        [1913 Webster]
""",
    "Unable": """Unable \\Un*a"ble\\, a.
   Not able; not having sufficient strength, means, or skill;
   incapable. --Shak.
   [1913 Webster]
""",
    "Abaxial": """Abaxial \\Ab*ax"i*al\\ ([a^]b*[a^]ks"[i^]*al), Abaxile \\Ab*ax"ile\\
   ([a^]b*[a^]ks"[i^]l), a. [L. ab + axis axle.] (Bot.)
   Away from the axis or central line of an organ; eccentric.
   [1913 Webster]
""",
}
GCIDE_SENSES = {
    "able": [
        "Fit; adapted; suitable.",
        "Having sufficient power, skill, or means to do something; competent; qualified; "
        "as, a man able to work.",
    ],
    "unable": ["Not able; not having sufficient strength, means, or skill; incapable."],
    "abaxial": ["Away from the axis or central line of an organ; eccentric."],
}

KJV_SLOTS = [
    "",
    '<milestone type="x-importer"/>',
    '<div osisID="Gen" type="book"/> <title type="main">Genesis</title>',
    '<chapter n="1" osisID="Gen.1" sID="Gen.1"/> ',
    'In the <w lemma="strong:H7225">beginning</w> God created the heaven and the earth. ',
    "And the earth was without form, and void. ",
    '<chapter n="2" osisID="Gen.2" sID="Gen.2"/>',
    "¶ Thus the heavens and the earth were finished. ",
    '<div osisID="Exod" type="book"/>',
    '<chapter n="1" osisID="Exod.1" sID="Exod.1"/>',
    "Now these are the names of the children of Israel. ",
    "",  # an empty slot: no verse here in this translation
]
WEB_SLOTS = [
    "",
    '<milestone type="x-importer"/>',
    '<div sID="gen2" type="front"/> <title type="main">Preface</title>',
    '<chapter n="1" osisID="Gen.1" sID="Gen.1"/>',
    'In the beginning, God<note placement="foot"><reference>1:1 </reference>Elohim.</note> '
    "created the heavens and the earth.",
    "The earth was formless and empty.",
    '<chapter n="2" osisID="Gen.2" sID="Gen.2"/> <speaker>Narrator</speaker>',
    "The heavens, the earth, and all their vast array were finished.",
    '<div osisID="Exod" type="book"/>',
    '<chapter n="1" osisID="Exod.1" sID="Exod.1"/>',
    "Now these are the names of the sons of Israel. Amen. "
    '<div sID="g1" type="glossary"/> <title>Glossary</title> Abba is Aramaic for father.',
    "",
]
ALIGNED_VERSES = [
    (
        ("Gen", 1, 1),
        "In the beginning God created the heaven and the earth.",
        "In the beginning, God created the heavens and the earth.",
    ),
    (
        ("Gen", 1, 2),
        "And the earth was without form, and void.",
        "The earth was formless and empty.",
    ),
    (
        ("Gen", 2, 1),
        "Thus the heavens and the earth were finished.",
        "The heavens, the earth, and all their vast array were finished.",
    ),
    (
        ("Exod", 1, 1),
        "Now these are the names of the children of Israel.",
        "Now these are the names of the sons of Israel. Amen.",
    ),
]

RST_FAQ = """\
:tocdepth: 2

==========
Sample FAQ
==========

.. contents::

General
=======

What is Foo?
------------

Foo is a *small* tool that uses ``bar`` and :func:`baz.qux`. See
`the manual <https://example.org/>`_ for more.

Example::

    foo --run
    foo --stop

That is all.

How do I stop it?
-----------------

.. note::

   Stopping is safe.

>>> stop()
True

Call **stop** when done.
"""
RST_SECTIONS = [
    ("Sample FAQ", ""),
    ("General", ""),
    (
        "What is Foo?",
        "Foo is a small tool that uses bar and baz.qux. See the manual for more.\n"
        "Example:\nThat is all.",
    ),
    ("How do I stop it?", "Stopping is safe.\nCall stop when done."),
]

DEBIAN_FAQ = """\

                      The Debian GNU/Linux FAQ

Table of Contents

1. Definitions and overview
    1.1. What is this FAQ?
    1.2. What is the difference between Debian\xa0GNU/Linux and other
    Linux distributions?
2. Getting Debian
    2.1. Where can I get it?
    2.1.1. Is it free?

Chapter 1. Definitions and overview

1.1. What is this FAQ?

    This document answers questions\xa0about Debian.

    Pointers to other documentation are given.

1.2. What is the difference between Debian GNU/Linux and other
Linux distributions?

    Debian is developed by volunteers.

Chapter 2. Getting Debian

2.1. Where can I get it?

    From the mirrors.

2.1.1. Is it free?

    Yes, it is free software.

2.1.1.1. Really?

    Really.
"""
DEBIAN_FAQ_ENTRIES = [
    (
        "1.1",
        "What is this FAQ?",
        "This document answers questions about Debian.\nPointers to other documentation are given.",
    ),
    (
        "1.2",
        "What is the difference between Debian GNU/Linux and other Linux distributions?",
        "Debian is developed by volunteers.",
    ),
    ("2.1", "Where can I get it?", "From the mirrors."),
    ("2.1.1", "Is it free?", "Yes, it is free software.\n2.1.1.1. Really?\nReally."),
]

LEE_DOCS = [
    "The café opened downtown yesterday.",
    "Stocks fell sharply on Monday.",
    "Rain is expected over the weekend.",
]
LEE_MATRIX = "1\t0.5\t0.25\n0\t1\t0.75\n0\t0\t1\n"


# ------------------------------------------------------------------- binary writers


def b64_number(value: int) -> str:
    """dictd's base-64 numbers (the inverse of gcide.decode_b64_number, written here)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = alphabet[value % 64]
    while value >= 64:
        value //= 64
        out = alphabet[value % 64] + out
    return out


def write_dictd(folder: pathlib.Path, entries: dict[str, str]) -> tuple[pathlib.Path, pathlib.Path]:
    """gcide.index (with a 00-database line and an alias pointing at the first entry) and a
    gzip gcide.dict.dz."""
    data, index = b"", []
    info = "00-database-info\nThis file was converted from the original database.\n\n"
    index.append(("00-database-info", len(data), len(info.encode())))
    data += info.encode()
    for word, text in entries.items():
        raw = (text + "\n").encode()
        index.append((word, len(data), len(raw)))
        data += raw
    index.append(("Abler", index[1][1], index[1][2]))  # an inflection pointing at "Able"
    folder.mkdir(parents=True, exist_ok=True)
    index_path, dict_path = folder / "gcide.index", folder / "gcide.dict.dz"
    index_path.write_text(
        "".join(f"{w}\t{b64_number(o)}\t{b64_number(n)}\n" for w, o, n in index), "utf-8"
    )
    dict_path.write_bytes(gzip.compress(data))
    return index_path, dict_path


def write_ztext(folder: pathlib.Path, slots: list[str], block_size: int = 4) -> None:
    """One testament ("ot") of a zText module in the documented layout: slots grouped into
    zlib blocks of ``block_size`` entries."""
    folder.mkdir(parents=True, exist_ok=True)
    bzs, bzv, bzz = b"", b"", b""
    for block, start in enumerate(range(0, len(slots), block_size)):
        raw = b""
        for entry in slots[start : start + block_size]:
            encoded = entry.encode()
            bzv += struct.pack("<IIH", block, len(raw), len(encoded))
            raw += encoded
        compressed = zlib.compress(raw)
        bzs += struct.pack("<III", len(bzz), len(compressed), len(raw))
        bzz += compressed
    (folder / "ot.bzs").write_bytes(bzs)
    (folder / "ot.bzv").write_bytes(bzv)
    (folder / "ot.bzz").write_bytes(bzz)


def _save(cache: pathlib.Path, package: str, version: str, root: pathlib.Path) -> None:
    source = deb.FetchedSource(package, version, root, f"{package}_{version}_all.deb", "test")
    (cache / package / deb.SOURCE_FILE).write_text(json.dumps(source.to_json()))


def write_sample_sources(cache: pathlib.Path) -> None:
    """Every source's sample laid out as ``fetch_*`` leaves it in ``cache`` (with source.json),
    so a build finds them cached and downloads nothing."""
    root = cache / "translation-en" / "root"
    root.mkdir(parents=True)
    # uncompressed, so the test does not depend on the lz4 package
    (root / "sample_i18n_Translation-en").write_text(TRANSLATION_EN)
    _save(cache, "translation-en", "sample", root)

    for package, pages in (
        ("manpages", {"man3/frob.3": MAN_PAGE, "man3/frobnicate.3": MAN_STUB}),
        ("manpages-dev", {"man2/other.2": MAN_PAGE.replace("frob", "twiddle")}),
    ):
        root = cache / package / "root"
        for name, text in pages.items():
            path = root / "usr/share/man" / f"{name}.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(gzip.compress(text.encode()))
        _save(cache, package, "6.03-2", root)

    root = cache / "wordnet-base" / "root"
    folder = root / "usr/share/wordnet"
    folder.mkdir(parents=True)
    for name, text in (("noun", WORDNET_NOUN), ("verb", ""), ("adj", WORDNET_ADJ), ("adv", "")):
        (folder / f"data.{name}").write_bytes(text.encode("latin-1"))
    _save(cache, "wordnet-base", "1:3.0-37", root)

    root = cache / "dict-gcide" / "root"
    write_dictd(root / "usr/share/dictd", GCIDE_ENTRIES)
    _save(cache, "dict-gcide", "0.48.5", root)

    for package, module, slots in (
        ("sword-text-kjv", "engKJV2006eb", KJV_SLOTS),
        ("sword-text-web", "engWEB2015eb", WEB_SLOTS),
    ):
        root = cache / package / "root"
        write_ztext(root / "usr/share/sword/modules/texts/ztext" / module, slots)
        _save(cache, package, "1", root)

    root = cache / "python3.11-doc" / "root"
    docs = root / python_docs.SOURCES
    (docs / "faq").mkdir(parents=True)
    (docs / "faq" / "general.rst.txt").write_text(RST_FAQ)
    (docs / "tutorial.rst.txt").write_text(
        "Tutorial\n========\n\nStart here with the interpreter and type a few statements "
        "to see how the language answers back.\n\nNumbers\n-------\n\nThe interpreter acts as "
        "a simple calculator: type an expression and it prints the value.\n"
    )
    _save(cache, "python3.11-doc", "3.11.2", root)

    root = cache / "debian-faq" / "root"
    path = root / debian_faq.FAQ_PATH
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(DEBIAN_FAQ.encode()))
    _save(cache, "debian-faq", "11.1", root)

    root = cache / "gensim" / "root"
    folder = root / lee.DATA
    folder.mkdir(parents=True)
    (folder / "lee.cor").write_bytes("\n".join(LEE_DOCS).encode("latin-1"))
    (folder / "similarities0-1.txt").write_text(LEE_MATRIX)
    _save(cache, "gensim", lee.GENSIM_VERSION, root)


# ----------------------------------------------------------------------------- tests


def test_translation_en_records_paragraphs_and_dedup():
    records = list(apt_descriptions.parse_translation(TRANSLATION_EN))
    assert [r.package for r in records] == ["foo-tools", "foo-tools-doc", "bar-daemon"]
    assert records[0].short == "tools for working with foo archives"
    assert records[0].paragraphs == (
        "Foo-tools reads, writes and checks foo archives, a compressed format used by many "
        "backup programs.",
        "This package contains the command-line tools:\n* foo-pack\n* foo-unpack",
    )
    pairs = apt_descriptions.first_paragraph_pairs(records)
    # foo-tools-doc repeats foo-tools' first paragraph: only the first package is kept
    assert [(r.package, short) for r, short, _ in pairs] == [
        ("foo-tools", "tools for working with foo archives"),
        ("bar-daemon", "background service that watches bar sensors"),
    ]


def test_translation_en_lz4_file(tmp_path):
    lz4_frame = pytest.importorskip("lz4.frame")
    path = tmp_path / "x_i18n_Translation-en.lz4"
    path.write_bytes(lz4_frame.compress(TRANSLATION_EN.encode()))
    assert len(list(apt_descriptions.read_translations([path]))) == 3


def test_man_page_roff_to_text():
    page = manpages.parse_man_page(MAN_PAGE, "frob.3")
    assert page.names == "frob, frobnicate"
    assert page.summary == "adjust the frobnication level of a stream"
    assert page.description == (
        "The frob() function sets the frobnication level of stream, and returns zero on "
        "success — or -1 on error.\n"
        "A level of 0 disables frobnication; see fcntl(2).\n"
        "FROB_MAX The largest level."
    )
    assert manpages.parse_man_page(MAN_STUB, "frobnicate.3") is None
    assert manpages.roff_to_text(['.BI "int frob(FILE *" stream ", int " level );']) == (
        "int frob(FILE *stream, int level);"
    )


def test_man_pages_skip_symlinks_and_stubs(tmp_path):
    folder = tmp_path / "usr/share/man/man3"
    folder.mkdir(parents=True)
    (folder / "frob.3.gz").write_bytes(gzip.compress(MAN_PAGE.encode()))
    (folder / "frobnicate.3.gz").write_bytes(gzip.compress(MAN_STUB.encode()))
    (folder / "frob_alias.3.gz").symlink_to("frob.3.gz")
    pages = manpages.read_man_pages([tmp_path])
    assert [p.page for p in pages] == ["frob.3"]


def test_wordnet_synsets_pairs_and_antonyms(tmp_path):
    for name, text in (("noun", WORDNET_NOUN), ("verb", ""), ("adj", WORDNET_ADJ), ("adv", "")):
        (tmp_path / f"data.{name}").write_bytes(text.encode("latin-1"))
    synsets = wordnet.read_wordnet(tmp_path)
    assert len(synsets) == 6  # license lines skipped
    dog = synsets[("noun", 2000)]
    assert dog.words == ("dog", "domestic dog", "Canis familiaris")
    assert dog.definitions == ("a member of the genus Canis that has been domesticated by man",)
    assert dog.examples == ("the dog barked all night",)
    cat = synsets[("noun", 3000)]
    assert cat.examples == ("the cat sat", "curiosity killed the cat")  # attribution dropped
    assert synsets[("adj", 2312)].words == ("abaxial", "dorsal")  # "(a)" marker dropped
    values = list(synsets.values())
    assert wordnet.synonym_pairs(values) == [
        ("dog", "domestic dog"),
        ("dog", "Canis familiaris"),
        ("domestic dog", "Canis familiaris"),
        ("abaxial", "dorsal"),
    ]
    assert ("cat", "feline mammal usually having thick soft fur") in wordnet.definition_pairs(
        values
    )
    assert ("feline mammal usually having thick soft fur", "the cat sat") in wordnet.example_pairs(
        values
    )
    antonyms = {(a, b) for a, _, b, _ in wordnet.antonym_pairs(synsets)}
    assert antonyms == {
        ("able", "unable"),
        ("unable", "able"),
        ("abaxial", "adaxial"),
        ("adaxial", "abaxial"),
    }
    assert wordnet.split_gloss('progress (as in the phrase "make headway"); "we made headway"') == (
        ('progress (as in the phrase "make headway")',),
        ("we made headway",),
    )


def test_dictd_base64_offsets_and_gcide_senses(tmp_path):
    assert gcide.decode_b64_number("Zv5") == 25 * 64 * 64 + 47 * 64 + 57
    assert gcide.decode_b64_number("C/") == 2 * 64 + 63
    assert all(gcide.decode_b64_number(b64_number(n)) == n for n in (0, 1, 63, 64, 4097, 10**7))
    index_path, dict_path = write_dictd(tmp_path, GCIDE_ENTRIES)
    index = gcide.read_index(index_path)
    assert [w for w, _, _ in index] == ["Able", "Unable", "Abaxial", "Abler"]  # no 00-database
    assert gcide.read_definitions(index_path, dict_path) == GCIDE_SENSES


def test_ztext_module_verses_and_alignment(tmp_path):
    kjv_dir, web_dir = tmp_path / "kjv", tmp_path / "web"
    write_ztext(kjv_dir, KJV_SLOTS, block_size=4)
    write_ztext(web_dir, WEB_SLOTS, block_size=5)
    assert sword.read_ztext(kjv_dir, "ot") == KJV_SLOTS
    refs = sword.verse_refs(KJV_SLOTS)
    assert refs[4] == ("Gen", 1, 1) and refs[7] == ("Gen", 2, 1) and refs[10] == ("Exod", 1, 1)
    assert 8 not in refs  # Exodus' heading slot is not Genesis 2:2
    kjv, web = sword.read_verses(kjv_dir), sword.read_verses(web_dir)
    assert sword.aligned_verses(kjv, web) == ALIGNED_VERSES
    # a chapter whose verses run longer in one translation is skipped, not shifted
    web[("Gen", 2, 2)] = "An extra verse."
    assert [ref for ref, _, _ in sword.aligned_verses(kjv, web)] == [
        ("Gen", 1, 1),
        ("Gen", 1, 2),
        ("Exod", 1, 1),
    ]


def test_rst_sections_and_faq():
    sections = python_docs.split_sections(RST_FAQ, "faq/general.rst.txt")
    assert [(s.heading, s.body) for s in sections] == RST_SECTIONS
    assert {s.title for s in sections} == {"Sample FAQ"}
    assert [s.heading for s in sections if python_docs.is_faq(s)] == [
        "What is Foo?",
        "How do I stop it?",
    ]


def test_debian_faq_questions_and_answers():
    assert debian_faq.parse_debian_faq(DEBIAN_FAQ) == DEBIAN_FAQ_ENTRIES


def test_lee_upper_triangle(tmp_path):
    (tmp_path / "lee.cor").write_bytes("\n".join(LEE_DOCS).encode("latin-1"))
    (tmp_path / "sim.txt").write_text(LEE_MATRIX)
    records = lee.read_lee(tmp_path / "lee.cor", tmp_path / "sim.txt")
    assert records == [
        STSRecord(LEE_DOCS[0], LEE_DOCS[1], 0.5),
        STSRecord(LEE_DOCS[0], LEE_DOCS[2], 0.25),
        STSRecord(LEE_DOCS[1], LEE_DOCS[2], 0.75),
    ]


def test_negation_triplets_from_wordnet_and_gcide(tmp_path):
    for name, text in (("noun", WORDNET_NOUN), ("verb", ""), ("adj", WORDNET_ADJ), ("adv", "")):
        (tmp_path / f"data.{name}").write_bytes(text.encode("latin-1"))
    synsets = wordnet.read_wordnet(tmp_path)
    triplets = negation.negation_triplets(synsets, GCIDE_SENSES)
    # only "unable" has a negating definition; "adaxial" is not negating, "abaxial" lacks it
    assert triplets == [
        (
            "able",
            "unable",
            NegationRecord(
                anchor="having the necessary means or skill or know-how or authority to do "
                "something",
                entailment=GCIDE_SENSES["able"][1],  # more shared words than "Fit; adapted"
                negative="not having the necessary means or skill or know-how",
            ),
        )
    ]


def test_dep5_license_names(tmp_path):
    path = tmp_path / "copyright"
    path.write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: someone\nLicense: GPL-2+\n\n"
        "Files: man3/x.3\nCopyright: other\nLicense: BSD-3-clause\n\n"
        "Files: debian/*\nCopyright: packager\nLicense: GPL-3\n"
    )
    assert deb.dep5_licenses(path) == ["GPL-2+", "BSD-3-clause"]
    path.write_text("This is a free-form copyright file.\n")
    assert deb.dep5_licenses(path) == []


def test_fetch_trusts_only_a_finished_cache(tmp_path):
    write_sample_sources(tmp_path)
    source = wordnet.fetch_wordnet(tmp_path)  # cached: no apt-get
    assert source.version == "1:3.0-37"
    assert source.root == tmp_path / "wordnet-base" / "root"
    (tmp_path / "wordnet-base" / deb.SOURCE_FILE).unlink()  # as after an interrupted fetch
    assert deb.load_fetched(tmp_path / "wordnet-base") is None
