{#
    One row per (model, window) that has rows, with the reference the window is judged against,
    chosen per model by raw.monitored_models.reference_kind:
    - model_version: the newest model version with reference rows that is not newer than the
      newest version among the window's rows (any version when all are NULL);
      reference_id `model_version:<v>`;
    - time_range: the model's own production rows scored in [reference_start_at,
      reference_end_at); reference_id `time_range:<start>/<end>`. Usable only once the range is
      complete (the model has a row scored at or after reference_end_at) and not empty;
    - previous_window: the rows of the latest earlier window of the model that has rows;
      reference_id `window:<its window_start>`.
    serving_version is the model_version rule's version for every kind: the version with reference
    rows whose validation the window's realized performance is compared with.
    reference_id is NULL when the window has no usable reference (first window of a
    previous_window model, time range not complete or empty, no version with reference rows): such
    a window is reported without judgement.

    reference_max_ingest_seq is the newest ingest_seq (raw's ingest order) of the production rows the
    reference is made of (previous_window, time_range; NULL for model_version): the frozen bins
    freeze a production-row reference again when it moves, since late rows changed the reference.
    max_ingest_seq is the newest ingest_seq of all the rows the window's statistics depend on: its
    own rows and its reference's. The window counts recount a window when it moves past their
    watermark, so late rows recount their window and every window judged against them, whatever
    the clocks said when they were loaded.
#}

with

inference_logs as (

    select * from {{ ref('stg_raw__inference_logs') }}

),

monitored_models as (

    select * from {{ ref('stg_raw__monitored_models') }}

),

reference_rows as (

    select * from {{ ref('stg_raw__reference_rows') }}

),

windowed_logs as (

    select
        inference_logs.model_name,
        inference_logs.model_version,
        monitored_models.window_seconds,
        inference_logs.scored_at,
        inference_logs.ingest_seq,
        {{ window_start_at('inference_logs.scored_at', 'monitored_models.window_seconds') }} as window_start

    from inference_logs
    inner join monitored_models
        on inference_logs.model_name = monitored_models.model_name

),

windows as (

    select
        model_name,
        window_start,
        window_seconds,
        max(model_version) as max_model_version,
        count(*) as n_rows,
        max(ingest_seq) as window_max_ingest_seq

    from windowed_logs
    group by
        model_name,
        window_start,
        window_seconds

),

reference_versions as (

    select distinct
        model_name,
        model_version

    from reference_rows

),

model_version_references as (

    select
        windows.model_name,
        windows.window_start,
        max(reference_versions.model_version) as reference_version

    from windows
    inner join reference_versions
        on
            windows.model_name = reference_versions.model_name
            and (
                windows.max_model_version is null
                or windows.max_model_version >= reference_versions.model_version
            )
    group by
        windows.model_name,
        windows.window_start

),

time_ranges as (

    select
        monitored_models.model_name,
        monitored_models.reference_start_at,
        monitored_models.reference_end_at,
        sum(
            case
                when
                    windowed_logs.scored_at >= monitored_models.reference_start_at
                    and windowed_logs.scored_at < monitored_models.reference_end_at
                    then 1
                else 0
            end
        ) as n_reference_rows,
        max(windowed_logs.scored_at) as max_scored_at,
        max(
            case
                when
                    windowed_logs.scored_at >= monitored_models.reference_start_at
                    and windowed_logs.scored_at < monitored_models.reference_end_at
                    then windowed_logs.ingest_seq
            end
        ) as range_max_ingest_seq

    from monitored_models
    inner join windowed_logs
        on monitored_models.model_name = windowed_logs.model_name
    where monitored_models.reference_kind = 'time_range'
    group by
        monitored_models.model_name,
        monitored_models.reference_start_at,
        monitored_models.reference_end_at

),

usable_time_ranges as (

    select
        model_name,
        'time_range:'
        || {{ timestamp_to_text('reference_start_at') }}
        || '/'
        || {{ timestamp_to_text('reference_end_at') }} as reference_id,
        range_max_ingest_seq

    from time_ranges
    where
        n_reference_rows > 0
        and max_scored_at >= reference_end_at

),

previous_windows as (

    select
        model_name,
        window_start,
        lag(window_start) over (partition by model_name order by window_start) as previous_window_start,
        lag(window_max_ingest_seq) over (partition by model_name order by window_start)
            as previous_max_ingest_seq

    from windows

),

window_choices as (

    select
        windows.model_name,
        monitored_models.reference_kind,
        case
            when monitored_models.reference_kind = 'model_version'
                then
                    'model_version:'
                    || cast(model_version_references.reference_version as {{ dbt.type_string() }})
            when monitored_models.reference_kind = 'time_range'
                then usable_time_ranges.reference_id
            when monitored_models.reference_kind = 'previous_window'
                then 'window:' || {{ timestamp_to_text('previous_windows.previous_window_start') }}
        end as reference_id,
        cast(
            case
                when monitored_models.reference_kind = 'model_version'
                    then model_version_references.reference_version
            end as {{ dbt.type_int() }}
        ) as reference_version,
        {#- whatever the drift reference: the version whose validation the window's performance
            is compared with (fct_model_performance) #}
        cast(model_version_references.reference_version as {{ dbt.type_int() }}) as serving_version,
        cast(windows.n_rows as {{ dbt.type_bigint() }}) as n_rows,
        windows.window_start,
        {{ dbt.dateadd('second', 'windows.window_seconds', 'windows.window_start') }} as window_end,
        case
            when monitored_models.reference_kind = 'previous_window'
                then previous_windows.previous_window_start
        end as reference_window_start,
        {#- the newest ingest_seq among the rows the window's reference is made of (NULL for a model
            version's reference rows, which never change once loaded) #}
        case
            when monitored_models.reference_kind = 'previous_window'
                then previous_windows.previous_max_ingest_seq
            when monitored_models.reference_kind = 'time_range'
                then usable_time_ranges.range_max_ingest_seq
        end as reference_max_ingest_seq,
        windows.window_max_ingest_seq

    from windows
    inner join monitored_models
        on windows.model_name = monitored_models.model_name
    left join model_version_references
        on
            windows.model_name = model_version_references.model_name
            and windows.window_start = model_version_references.window_start
    left join usable_time_ranges
        on windows.model_name = usable_time_ranges.model_name
    left join previous_windows
        on
            windows.model_name = previous_windows.model_name
            and windows.window_start = previous_windows.window_start

),

final as (

    select
        model_name,
        reference_kind,
        reference_id,
        reference_version,
        serving_version,
        n_rows,
        window_start,
        window_end,
        reference_window_start,
        reference_max_ingest_seq,
        case
            when reference_max_ingest_seq > window_max_ingest_seq then reference_max_ingest_seq
            else window_max_ingest_seq
        end as max_ingest_seq

    from window_choices

)

select * from final
