-- Fan-out on write: adds (or removes) a post in the timeline of every follower of its author
-- and drops their cached timeline and unified pages. Authors with more followers than the
-- limit are not fanned out but marked in big_authors; readers merge their posts on read.
-- Returns the followers reached (for in-process invalidation), empty when over the limit.
-- Key names come from the caller (keys.rs, feeds/scope.rs); only the follower ids are added.
-- KEYS[1] followers:{author}, KEYS[2] big_authors
-- ARGV[1] post id, ARGV[2] time (ms), ARGV[3] 'add' | 'remove', ARGV[4] fan-out limit,
-- ARGV[5] timeline cap, ARGV[6] author id,
-- ARGV[7], ARGV[8] what precedes and follows a follower's id in their timeline key,
-- ARGV[9], ARGV[10] what precedes a follower's id in their timeline and unified page keys
if redis.call('SCARD', KEYS[1]) > tonumber(ARGV[4]) then
  redis.call('SADD', KEYS[2], ARGV[6])
  return {}
end
local followers = redis.call('SMEMBERS', KEYS[1])
for _, follower in ipairs(followers) do
  local timeline = ARGV[7] .. follower .. ARGV[8]
  if ARGV[3] == 'add' then
    redis.call('ZADD', timeline, ARGV[2], ARGV[1])
    redis.call('ZREMRANGEBYRANK', timeline, 0, -(tonumber(ARGV[5]) + 1))
  else
    redis.call('ZREM', timeline, ARGV[1])
  end
  redis.call('DEL', ARGV[9] .. follower, ARGV[10] .. follower)
end
return followers
