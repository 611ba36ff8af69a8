-- Which model version classified each camera's parts, per day: the frames
-- it classified and when it was first and last seen (a promotion or
-- rollback shows as two versions on one day).
SELECT camera,
       dt,
       model.name AS model,
       model.version AS version,
       count(DISTINCT message_id) AS frames,
       min("timestamp") AS first_seen,
       max("timestamp") AS last_seen
FROM matid.results
WHERE dt BETWEEN '2026-12-01' AND '2026-12-07'
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 6;
