-- Caches a verified session unless its token was revoked meanwhile (a logout applied between
-- the check and this write must win).
-- KEYS[1] revoked:<jti>, KEYS[2] jwt_cache:<sha256>; ARGV[1] profile, ARGV[2] ttl (ms)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
