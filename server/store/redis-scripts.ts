/**
 * The Redis store's Lua scripts: each is one atomic step on Redis (a seq-checked save that also
 * PUBLISHes, an insert into every listing index, a prune, a lazy index of an older job, a bounded
 * history append), so two server nodes never interleave on one job. redis.ts documents the keys.
 * defineCommand uses EVALSHA and falls back to EVAL on NOSCRIPT (a restarted Redis forgot them).
 */
import type { Redis } from 'ioredis';
import { JOB_STATUSES } from '../../protocol/index.js';

const STATUS_LIST = JOB_STATUSES.map((s) => `'${s}'`).join(', ');

/**
 * KEYS: job, ev, st:queued, st:running, st:completed, st:failed, st:canceled, lst:queued … lst:canceled
 * ARGV: id, expectedSeq ('' = unchecked), seq, status, updatedAt, rec, ttlMs, channel, message,
 *       listMember, n, [tag channel] × n, [eventId, seq]...
 * → {1, seq} saved (or the identical save was already applied) · {0, storedSeq} conflict · {-1, 0} no job
 */
const SAVE_SCRIPT = `
local names = {${STATUS_LIST}}
local function idx(name) for i, n in ipairs(names) do if n == name then return i end end return nil end
local cur = redis.call('HGET', KEYS[1], 'seq')
if ARGV[2] ~= '' then
  if not cur then return {-1, 0} end
  if tonumber(cur) ~= tonumber(ARGV[2]) then
    -- A reply lost on a dropped connection makes ioredis resend: the same save is a success.
    if tonumber(cur) == tonumber(ARGV[3]) and redis.call('HGET', KEYS[1], 'rec') == ARGV[6] then return {1, tonumber(cur)} end
    return {0, tonumber(cur)}
  end
end
local old = redis.call('HGET', KEYS[1], 'status')
redis.call('HSET', KEYS[1], 'seq', ARGV[3], 'status', ARGV[4], 'rec', ARGV[6])
local oi = old and idx(old)
local ni = idx(ARGV[4])
if oi and oi ~= ni then
  redis.call('ZREM', KEYS[2 + oi], ARGV[1])
  redis.call('ZREM', KEYS[7 + oi], ARGV[10])
end
redis.call('ZADD', KEYS[2 + ni], tonumber(ARGV[5]), ARGV[1])
if oi ~= ni then redis.call('ZADD', KEYS[7 + ni], 0, ARGV[10]) end
local tags = tonumber(ARGV[11])
for i = 12 + tags, #ARGV, 2 do redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1]) end
local ttl = tonumber(ARGV[7])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
if ARGV[8] ~= '' then redis.call('PUBLISH', ARGV[8], ARGV[9]) end
for i = 12, 11 + tags do redis.call('PUBLISH', ARGV[i], ARGV[9]) end
return {1, tonumber(ARGV[3])}
`;

/**
 * KEYS: job, st:<status>, lst:<status>, created, kind:<kind>, tag:<tag>...
 * ARGV: id, seq, status, updatedAt, rec, listMember, ix (JSON: KEYS[4..], the indexes prune empties), n, [tag channel] × n, message
 * → 1 inserted, 0 exists
 */
const INSERT_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'status', ARGV[3], 'rec', ARGV[5], 'lm', ARGV[6], 'ix', ARGV[7])
redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), ARGV[1])
for i = 3, #KEYS do redis.call('ZADD', KEYS[i], 0, ARGV[6]) end
local n = tonumber(ARGV[8])
for i = 9, 8 + n do redis.call('PUBLISH', ARGV[i], ARGV[9 + n]) end
return 1
`;

/** KEYS: st:<finished status>, job, ev · ARGV: id, prefix → 1 when this call deleted it (and took it out of the listing indexes) */
const PRUNE_ONE_SCRIPT = `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local f = redis.call('HMGET', KEYS[2], 'lm', 'ix', 'status')
if f[1] then
  if f[3] then redis.call('ZREM', ARGV[2] .. 'lst:' .. f[3], f[1]) end
  if f[2] then for _, key in ipairs(cjson.decode(f[2])) do redis.call('ZREM', key, f[1]) end end
end
redis.call('DEL', KEYS[2], KEYS[3])
return 1
`;

/** Indexes one job stored before the listing indexes existed. KEYS: job · ARGV: listMember, ix, prefix → 1 indexed now */
const INDEX_ONE_SCRIPT = `
local f = redis.call('HMGET', KEYS[1], 'lm', 'status')
if f[1] or not f[2] then return 0 end
for _, key in ipairs(cjson.decode(ARGV[2])) do redis.call('ZADD', key, 0, ARGV[1]) end
redis.call('ZADD', ARGV[3] .. 'lst:' .. f[2], 0, ARGV[1])
redis.call('HSET', KEYS[1], 'lm', ARGV[1], 'ix', ARGV[2])
return 1
`;

/** KEYS: hist:<key>, hist:keys, hist:n · ARGV: key, sample, maxPerKey */
const HISTORY_SCRIPT = `
local n = redis.call('INCR', KEYS[3])
redis.call('RPUSH', KEYS[1], n .. '|' .. ARGV[2])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
redis.call('SADD', KEYS[2], ARGV[1])
return n
`;

export interface ScriptedRedis extends Redis {
  ptSave(...args: Array<string | number>): Promise<[number, number]>;
  ptInsert(...args: Array<string | number>): Promise<number>;
  ptPruneOne(...args: Array<string | number>): Promise<number>;
  ptIndexOne(...args: Array<string | number>): Promise<number>;
  ptHistory(...args: Array<string | number>): Promise<number>;
}

/** Registers the scripts as commands on `client` (ptSave, ptInsert, …). */
export function defineScripts(client: Redis): ScriptedRedis {
  client.defineCommand('ptSave', { numberOfKeys: 2 + 2 * JOB_STATUSES.length, lua: SAVE_SCRIPT });
  // The insert's key count varies with the job's tags: given first on each call.
  client.defineCommand('ptInsert', { lua: INSERT_SCRIPT });
  client.defineCommand('ptPruneOne', { numberOfKeys: 3, lua: PRUNE_ONE_SCRIPT });
  client.defineCommand('ptIndexOne', { numberOfKeys: 1, lua: INDEX_ONE_SCRIPT });
  client.defineCommand('ptHistory', { numberOfKeys: 3, lua: HISTORY_SCRIPT });
  return client as ScriptedRedis;
}
