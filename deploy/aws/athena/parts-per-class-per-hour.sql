-- Parts seen per class per hour and camera. Delivery is at least once: a
-- result can arrive twice with the same message_id, so count distinct ids.
SELECT date_trunc('hour', from_iso8601_timestamp("timestamp")) AS hour,
       camera,
       top_label,
       count(DISTINCT message_id) AS parts
FROM matid.results
WHERE dt BETWEEN '2026-12-01' AND '2026-12-07'
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;
