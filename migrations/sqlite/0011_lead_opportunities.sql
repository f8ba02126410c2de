-- The opportunity each lead made in GHL, per location and reference (`dripjobs/deal_id:1234567`,
-- or `event/<id>` for a lead without references): a replay, an edit or a follow-up finds it here,
-- so no lead ever gets a second card. `pipeline_id` is where a follow-up's stage name is looked
-- up. Written before the step that made it is recorded done; kept after retention deletes the
-- events (a replay of a captured delivery still finds its card).
CREATE TABLE lead_opportunities (
    location_id    TEXT    NOT NULL,
    reference      TEXT    NOT NULL,
    opportunity_id TEXT    NOT NULL,
    pipeline_id    TEXT    NOT NULL,
    updated_at     BIGINT  NOT NULL,
    PRIMARY KEY (location_id, reference)
);
