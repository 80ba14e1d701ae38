-- On follow, copies the author's newest posts into the follower's timeline; on unfollow,
-- removes the author's posts from it.
-- KEYS[1] user_posts:{author}, KEYS[2] timeline:{follower}
-- ARGV[1] 'add' | 'remove', ARGV[2] how many of the author's newest posts, ARGV[3] timeline cap
local posts = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
for i = 1, #posts, 2 do
  if ARGV[1] == 'add' then
    redis.call('ZADD', KEYS[2], posts[i + 1], posts[i])
  else
    redis.call('ZREM', KEYS[2], posts[i])
  end
end
if ARGV[1] == 'add' then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[3]) + 1))
end
return #posts / 2
