-- Raw schema of the driftmart warehouse (docs/architecture.md §3.3). Only the ingest
-- step writes these tables; dbt reads them as sources. Timestamps are UTC, stored without a time zone.
create schema if not exists raw;

-- The ingest order: every row written to raw.inference_log and raw.labels takes the next number, so
-- "what is new since the last build" is a number comparison that no clock step can reorder.
create sequence if not exists raw.ingest_seq;

-- One row per logged prediction. The feature values are typed maps {feature_name: value}: numeric
-- features in feature_numbers, categorical ones in feature_categories (NULL values kept as NULL);
-- the feature list and types live in raw.model_features (written from the spec), so one table
-- serves any model and any feature names, and nothing on the hot path parses text.
-- (model_name, request_id) is unique, but not by an index: the writers insert only ids the table
-- does not hold (an anti-join, warehouse/ingest.py and importer.py), which costs a quarter of
-- maintaining a primary-key index on a bulk load, and the dbt test on stg_raw__inference_logs
-- checks it. warehouse/migrate.py drops the key of a home made with one.
create table if not exists raw.inference_log (
    model_name varchar not null,
    request_id varchar not null,
    model_version integer,
    feature_numbers map(varchar, double),
    feature_categories map(varchar, varchar),
    prediction varchar,
    probability double,
    scored_at timestamp not null,
    received_at timestamp,
    loaded_at timestamp not null,
    source varchar not null
);

-- Delayed ground truth, one row per request (a later label for the same request replaces it).
create table if not exists raw.labels (
    model_name varchar not null,
    request_id varchar not null,
    label varchar not null,
    labelled_at timestamp,
    loaded_at timestamp not null,
    source varchar not null,
    primary key (model_name, request_id)
);

-- The reference set of each model version: its held-out validation rows with predictions.
create table if not exists raw.reference_rows (
    model_name varchar not null,
    model_version integer not null,
    row_number integer not null,
    feature_numbers map(varchar, double),
    feature_categories map(varchar, varchar),
    prediction varchar,
    probability double,
    label varchar,
    loaded_at timestamp not null,
    primary key (model_name, model_version, row_number)
);

-- The score calibration of each binary model version with probabilities, fitted on its reference
-- set (ml/calibration.py: isotonic, as scikit-learn's IsotonicRegression.predict): on
-- [score_from, score_to] the calibrated probability runs linearly from calibrated_from to
-- calibrated_to; a score outside the segments takes the nearest end. dbt's performance estimate
-- without labels (CBPE, int_estimated_performance) joins the logged probabilities to it.
create table if not exists raw.score_calibration (
    model_name varchar not null,
    model_version integer not null,
    segment integer not null,
    score_from double not null,
    score_to double not null,
    calibrated_from double not null,
    calibrated_to double not null,
    loaded_at timestamp not null,
    primary key (model_name, model_version, segment)
);

-- Mirror of the on-disk model registry (ml/registry.py), one row per model version.
create table if not exists raw.model_registry (
    model_name varchar not null,
    model_version integer not null,
    created_at timestamp not null,
    trigger varchar not null,
    status varchar not null,
    artifact_sha256 varchar not null,
    metrics varchar not null,
    spec_fingerprint varchar not null,
    n_training_rows integer not null,
    n_reference_rows integer not null,
    loaded_at timestamp not null,
    primary key (model_name, model_version)
);

-- Added after the first release: the challenger-vs-champion comparison and the last lifecycle step.
alter table raw.model_registry add column if not exists validation varchar;
alter table raw.model_registry add column if not exists decision_reason varchar;
alter table raw.model_registry add column if not exists decided_at timestamp;
alter table raw.model_registry add column if not exists history varchar;
-- The class name of the version's final estimator (e.g. RandomForestClassifier); NULL if imported.
alter table raw.model_registry add column if not exists estimator varchar;

-- The monitoring spec of each model, as dbt reads it (never a hand-copied list in SQL).
-- reference_kind: model_version (each version's reference rows), previous_window (rolling) or
-- time_range (the production rows scored in [reference_start_at, reference_end_at)).
create table if not exists raw.monitored_models (
    model_name varchar not null primary key,
    window_seconds integer not null,
    min_window_rows integer not null,
    reference_kind varchar not null,
    reference_start_at timestamp,
    reference_end_at timestamp,
    statistics varchar not null,
    dataset_drift_share double not null,
    positive_label varchar not null,
    spec varchar not null,
    loaded_at timestamp not null
);

-- binary (default) | multiclass | regression: which prediction drift and which metrics apply.
alter table raw.monitored_models add column if not exists task varchar default 'binary';

-- Homes made before the typed maps: the columns are added here and filled from the old JSON
-- `features` column by warehouse/migrate.py, which then drops it.
alter table raw.inference_log add column if not exists feature_numbers map(varchar, double);
alter table raw.inference_log add column if not exists feature_categories map(varchar, varchar);
alter table raw.reference_rows add column if not exists feature_numbers map(varchar, double);
alter table raw.reference_rows add column if not exists feature_categories map(varchar, varchar);

-- Rows written before ingest_seq existed are numbered in table order when the column is added.
alter table raw.inference_log add column if not exists ingest_seq bigint default nextval('raw.ingest_seq');
alter table raw.labels add column if not exists ingest_seq bigint default nextval('raw.ingest_seq');

-- Multiclass models: every class's probability as a JSON object {"<class>": p, ...} (NULL for
-- binary models, whose `probability` is the positive class's, and for regression).
alter table raw.inference_log add column if not exists probabilities varchar;
alter table raw.reference_rows add column if not exists probabilities varchar;

-- The values of the spec's `segments` columns of each logged prediction and reference row,
-- {column: value as text}; NULL when the spec names no segments. Segment drift (dbt) reads them.
alter table raw.inference_log add column if not exists segment_values map(varchar, varchar);
alter table raw.reference_rows add column if not exists segment_values map(varchar, varchar);

-- The spec's segment columns and how segment drift judges them (ml/spec.py SegmentDrift): the
-- top_k values by reference volume with at least min_rows rows are segments of their own, and a
-- test is drifted when its Benjamini-Hochberg q-value is at most fdr.
create table if not exists raw.model_segments (
    model_name varchar not null,
    segment_name varchar not null,
    segment_position integer not null,
    top_k integer not null,
    min_rows integer not null,
    fdr double not null,
    loaded_at timestamp not null,
    primary key (model_name, segment_name)
);

-- drift_method decides is_drifted with drift_threshold: drifted when the statistic is >= the
-- threshold, except chi2_p_value, drifted when it is < the threshold.
create table if not exists raw.model_features (
    model_name varchar not null,
    feature_name varchar not null,
    feature_type varchar not null,
    feature_position integer not null,
    drift_method varchar not null,
    drift_threshold double not null,
    loaded_at timestamp not null,
    primary key (model_name, feature_name)
);

-- Which landing segments are loaded, and how far: the ingest step's exactly-once bookkeeping.
create table if not exists raw.landing_manifest (
    segment varchar not null primary key,
    stream varchar not null,
    bytes_loaded bigint not null,
    lines_loaded bigint not null,
    lines_quarantined bigint not null,
    is_complete boolean not null,
    updated_at timestamp not null
);

-- Lines that could not be loaded, with the reason: counted and kept, never dropped silently.
create table if not exists raw.quarantine (
    source varchar not null,
    byte_offset bigint not null,
    reason varchar not null,
    line varchar not null,
    quarantined_at timestamp not null,
    primary key (source, byte_offset)
);
