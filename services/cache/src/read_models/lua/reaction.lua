-- Sets or clears a user's reaction (the emoji of a like) on a known post, keeping one count per
-- emoji: a user holds at most one reaction, so reacting again with another emoji moves the count
-- and reacting twice with the same one changes nothing.
-- KEYS[1] the post hash, KEYS[2] user -> emoji (post_reactions:{P}),
-- KEYS[3] emoji -> count (post_reaction_counts:{P})
-- ARGV[1] user id, ARGV[2] 'set' | 'clear', ARGV[3] emoji (for 'set')
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local old = redis.call('HGET', KEYS[2], ARGV[1])
local function drop(emoji)
  if redis.call('HINCRBY', KEYS[3], emoji, -1) <= 0 then
    redis.call('HDEL', KEYS[3], emoji)
  end
end
if ARGV[2] == 'set' then
  if old == ARGV[3] then return 0 end
  if old then drop(old) end
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
  return 1
end
if not old then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
drop(old)
return 1
