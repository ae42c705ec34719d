-- Response-time reports: pages by when they were sent, and the timeline
-- entries the report looks for (unanswered, a step that found nobody) without
-- scanning every page's timeline.
CREATE INDEX pages_created_idx ON pages (created_at);
CREATE INDEX page_events_outcome_idx ON page_events (page_id, step) WHERE kind IN ('unanswered', 'no_one_on_call');
