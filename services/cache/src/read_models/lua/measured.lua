-- Applies the media service's measurements to a known post: the encoded partial `Post` in
-- ARGV[1] is appended to the stored encoding, which protobuf decodes as a merge (the fields it
-- sets win; fields it leaves unset keep their stored values).
-- KEYS[1] the post hash
local data = redis.call('HGET', KEYS[1], 'data')
if not data then return 0 end
redis.call('HSET', KEYS[1], 'data', data .. ARGV[1])
return 1
