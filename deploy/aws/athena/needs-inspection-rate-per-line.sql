-- The share of parts that need a person's look (top score under the
-- camera's threshold), per line and day; the line is the camera id up to
-- its first '-' (line1-cam1 -> line1).
SELECT split_part(camera, '-', 1) AS line,
       dt,
       count(DISTINCT message_id) AS parts,
       count(DISTINCT CASE WHEN needs_inspection THEN message_id END) AS needs_inspection,
       CAST(count(DISTINCT CASE WHEN needs_inspection THEN message_id END) AS double)
         / count(DISTINCT message_id) AS needs_inspection_rate
FROM matid.results
WHERE dt BETWEEN '2026-12-01' AND '2026-12-07'
GROUP BY 1, 2
ORDER BY 1, 2;
