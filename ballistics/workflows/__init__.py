"""Workflows over a collection: ingest, search, calibrate, the demo.

They combine the storage engine (:mod:`ballistics.collection`) with preprocessing, the
embedders (:mod:`ballistics.models`), comparison (:mod:`ballistics.matching`) and reports
(:mod:`ballistics.report`):

- :mod:`~ballistics.workflows.ingest`: read, prepare and embed casings into a collection
  (:func:`~ballistics.workflows.ingest.ingest`; on a Dask cluster
  :func:`ballistics.workflows.distributed.ingest`);
- :mod:`~ballistics.workflows.search`: shortlist by embedding, re-rank by comparison, LRs;
- :mod:`~ballistics.workflows.calibrate`: fit a collection's own score calibration;
- :mod:`~ballistics.workflows.demo`: the end-to-end demonstration on synthetic casings.
"""
