"""The search indexer: change messages -> current track documents -> the search index (SQS
Lambda in ``aws``, in process in ``local``)."""
