-- Stores a comment on a known post once, and counts it.
-- KEYS[1] post hash, KEYS[2] comment ids by time, KEYS[3] comment data
-- ARGV[1] comment id, ARGV[2] time (ms), ARGV[3] protobuf CommentItem, ARGV[4] the count field
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[3]) == 1 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  redis.call('HINCRBY', KEYS[1], ARGV[4], 1)
  return 1
end
return 0
