-- A mentor row now exists only once a batch names the mentor or moves its counts or own details: a user's
-- logins alone live in mentor_activity, and the row a later batch creates starts from that table's maximum.
-- Drop the rows earlier versions made for logins alone (unnamed, no counts, no details of its own), so a
-- schema validates against a fold of its log whichever version wrote it.
DELETE FROM mentor_counts
WHERE NOT named AND campus IS NULL AND floor IS NULL AND active IS NULL
  AND assigned_students = 0 AND pending_reviews = 0 AND reviews_completed = 0 AND approvals = 0
  AND rejections = 0 AND review_us_sum = 0 AND review_count = 0;
