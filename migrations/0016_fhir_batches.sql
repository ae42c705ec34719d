-- EHR notifications are processed in batches (package fhir, BatchSize): a
-- job claims its own notification and others of its subscription that are
-- waiting, until claimed_until, so that concurrent jobs take disjoint
-- batches. A claim is a lease, not a result: when it lapses (the job died,
-- or a notification failed and was released) the notification's own job
-- claims it again.
ALTER TABLE fhir_notifications ADD COLUMN claimed_until timestamptz;
-- How often applying it failed: a failed notification is released with a
-- claim that lapses after a backoff (and a job for then), so one that keeps
-- failing does not sink every batch; after fhir.MaxFailures it is given up,
-- processed with its last error as the outcome.
ALTER TABLE fhir_notifications ADD COLUMN failures int NOT NULL DEFAULT 0;

-- The notifications still waiting, oldest first, per subscription.
CREATE INDEX fhir_notifications_waiting_idx ON fhir_notifications (subscription, received_at)
    WHERE processed_at IS NULL;
