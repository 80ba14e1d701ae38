-- Counts one play, view or download of a known post.
-- KEYS[1] the post hash, ARGV[1] the count field
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
