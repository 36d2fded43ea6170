"""Publishing, on top of every stage: the pipeline and what it writes.

* :mod:`.plan`       a profile's config, the plan of keyed work items, the registry, staleness
* :mod:`.pipeline`   ``compact pipeline``: the runner (world -> rationales -> grid -> evaluation -> results ->
  notebooks -> book) and its worker pool
* :mod:`.report`     the result tables and figures of a profile
* :mod:`.results`    tables and figures with provenance
* :mod:`.figures`    plotting helpers shared by notebooks
* :mod:`.notebooks`  papermill execution (a failed notebook is never published)
* :mod:`.book`       book staging and build; :mod:`.browser` the headless-Chromium check
"""
