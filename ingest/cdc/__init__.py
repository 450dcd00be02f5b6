"""Change capture: the outbox (migration 0005), its publisher and sweeper, the SNS sink and the
indexer queue's dead letters."""
