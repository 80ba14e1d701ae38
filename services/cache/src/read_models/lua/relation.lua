-- Adds or removes a user in a post's set (likes, reposts) and keeps the post's count equal to
-- the set's size. Does nothing for posts the cache does not know (never created, or dropped).
-- KEYS[1] the set (post_likes:{P}), KEYS[2] the post hash (post:{P})
-- ARGV[1] user id, ARGV[2] 'add' | 'remove', ARGV[3] count field
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local changed
if ARGV[2] == 'add' then
  changed = redis.call('SADD', KEYS[1], ARGV[1])
else
  changed = redis.call('SREM', KEYS[1], ARGV[1])
end
if changed == 1 then
  redis.call('HSET', KEYS[2], ARGV[3], redis.call('SCARD', KEYS[1]))
end
return changed
