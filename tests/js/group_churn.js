#!/usr/bin/env node
// kafkajs roles for tests/test_kafkajs.py's consumer-group churn test. One role per process,
// so the test can SIGTERM (graceful) or SIGKILL any consumer on its own.
//
//   node group_churn.js consume  --brokers H:P --topic T --group G --name C1
//   node group_churn.js produce  --brokers H:P --topic T --from 0 --count 200000 --partitions 12 --rate 8000
//   node group_churn.js monitor  --brokers H:P --topic T --group G --interval-ms 200
//
// Every role prints one JSON object per line on stdout (the test parses them); kafkajs's own
// log goes to stderr. Record values are "id:<n>:<padding>", produced to partition n % partitions.
//
// consume: eachBatch with autoCommit off and auto-resolve off. For each batch it logs the ids it
// processed, then commits (batch.lastOffset + 1) through the batch's commitOffsetsIfNecessary
// (which commits exactly the given offsets with the member's current generation, without
// kafkajs's retry/"not running" shortcuts, so a logged "commit" is a commit the broker
// accepted), then resolves the offset. SIGTERM -> consumer.disconnect() (LeaveGroup), exit 0.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

function parseArgs(argv) {
  const args = { _: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a.startsWith('--')) {
      const key = a.slice(2)
      const next = argv[i + 1]
      if (next === undefined || next.startsWith('--')) {
        args[key] = true
      } else {
        args[key] = next
        i++
      }
    } else {
      args._.push(a)
    }
  }
  return args
}

const args = parseArgs(process.argv.slice(2))
const role = args._[0]
const name = args.name || role

function emit(obj) {
  // One write per line: a SIGKILL can cut the process between lines, not inside one.
  process.stdout.write(JSON.stringify(Object.assign({ ev: undefined, t: Date.now() }, obj)) + '\n')
}

function stderrLogCreator() {
  return ({ namespace, level, label, log }) => {
    const { message, ...extra } = log
    process.stderr.write(
      `${new Date().toISOString()} ${name} ${label} [${namespace}] ${message} ${JSON.stringify(extra)}\n`
    )
  }
}

function client(clientId) {
  return new Kafka({
    clientId,
    brokers: String(args.brokers).split(','),
    logLevel: logLevel[String(args['log-level'] || 'WARN').toUpperCase()],
    logCreator: stderrLogCreator,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 20 },
  })
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

function parseId(value) {
  const s = value.toString()
  const a = s.indexOf(':')
  const b = s.indexOf(':', a + 1)
  return Number(s.slice(a + 1, b < 0 ? undefined : b))
}

// ---------------------------------------------------------------------------------- consume
async function consume() {
  const topic = String(args.topic)
  const consumer = client(`churn-${name}`).consumer({
    groupId: String(args.group),
    sessionTimeout: Number(args['session-timeout-ms'] || 6000),
    rebalanceTimeout: Number(args['rebalance-timeout-ms'] || 10000),
    heartbeatInterval: Number(args['heartbeat-interval-ms'] || 1000),
    maxWaitTimeInMs: 500,
    retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 30 },
  })
  const { GROUP_JOIN, CRASH, REBALANCING, STOP } = consumer.events
  consumer.on(GROUP_JOIN, e => {
    const p = e.payload
    emit({
      ev: 'assign',
      member: p.memberId,
      leader: p.isLeader,
      parts: (p.memberAssignment[topic] || []).slice().sort((x, y) => x - y),
      join_ms: p.duration,
    })
  })
  consumer.on(REBALANCING, () => emit({ ev: 'rebalancing' }))
  consumer.on(CRASH, e =>
    emit({ ev: 'crash', err: String(e.payload.error && e.payload.error.message), restart: e.payload.restart })
  )
  consumer.on(STOP, () => emit({ ev: 'stop' }))

  let stopping = false
  const shutdown = async sig => {
    if (stopping) return
    stopping = true
    emit({ ev: 'stopping', sig })
    try {
      await consumer.disconnect()
      emit({ ev: 'stopped' })
      process.exit(0)
    } catch (e) {
      emit({ ev: 'stop_error', err: String(e && e.message) })
      process.exit(3)
    }
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))

  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  emit({ ev: 'subscribed' })
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 1,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary, heartbeat, isRunning, isStale }) => {
      if (batch.isEmpty()) return
      const ids = []
      let last = null
      for (const m of batch.messages) {
        if (!isRunning() || isStale()) break
        ids.push(parseId(m.value))
        last = m.offset
      }
      if (last === null) return
      // "Processing" is recording the ids; the commit comes after it.
      emit({ ev: 'batch', p: batch.partition, first: Number(batch.messages[0].offset), last: Number(last), ids })
      const next = (BigInt(last) + 1n).toString()
      const t0 = Date.now()
      try {
        await commitOffsetsIfNecessary({
          topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }],
        })
      } catch (e) {
        emit({ ev: 'commit_err', p: batch.partition, o: Number(next), err: String(e.type || e.message) })
        throw e // kafkajs rejoins on REBALANCE_IN_PROGRESS / ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID
      }
      emit({ ev: 'commit', p: batch.partition, o: Number(next), t0, t1: Date.now() })
      resolveOffset(last)
      await heartbeat()
    },
  })
  emit({ ev: 'running' })
}

// ---------------------------------------------------------------------------------- produce
async function produce() {
  const topic = String(args.topic)
  const from = Number(args.from || 0)
  const count = Number(args.count)
  const partitions = Number(args.partitions)
  const rate = Number(args.rate || 0) // records/s, 0 = as fast as possible
  const batchSize = Number(args['batch-size'] || 500)
  const inflight = Number(args.inflight || 2)
  const pad = 'x'.repeat(Number(args['value-bytes'] || 64))
  const producer = client(`churn-${name}`).producer({ allowAutoTopicCreation: false, idempotent: false })
  await producer.connect()
  const t0 = Date.now()
  let next = from
  let acked = 0
  let lastReport = 0
  const end = from + count

  async function sendOne(lo, hi) {
    const messages = []
    for (let id = lo; id < hi; id++) {
      messages.push({ partition: id % partitions, value: `id:${id}:${pad}` })
    }
    await producer.send({ topic, acks: -1, timeout: 30000, messages })
    acked += hi - lo
    const now = Date.now()
    if (now - lastReport >= 250 || acked === count) {
      lastReport = now
      emit({ ev: 'progress', acked })
    }
  }

  const workers = []
  for (let w = 0; w < inflight; w++) {
    workers.push(
      (async () => {
        while (next < end) {
          const lo = next
          const hi = Math.min(end, lo + batchSize)
          next = hi
          if (rate > 0) {
            const due = t0 + ((lo - from) * 1000) / rate
            const wait = due - Date.now()
            if (wait > 0) await sleep(wait)
          }
          await sendOne(lo, hi)
        }
      })()
    )
  }
  await Promise.all(workers)
  await producer.disconnect()
  emit({ ev: 'done', acked, from, count, ms: Date.now() - t0 })
}

// ---------------------------------------------------------------------------------- monitor
async function monitor() {
  const topic = String(args.topic)
  const groupId = String(args.group)
  const interval = Number(args['interval-ms'] || 200)
  const admin = client(`churn-${name}`).admin()
  await admin.connect()
  let stop = false
  process.on('SIGTERM', () => {
    stop = true
  })
  emit({ ev: 'monitoring' })
  while (!stop) {
    try {
      const [committed, ends] = await Promise.all([
        admin.fetchOffsets({ groupId, topics: [topic] }),
        admin.fetchTopicOffsets(topic),
      ])
      const o = {}
      for (const t of committed) {
        if (t.topic !== topic) continue
        for (const p of t.partitions) o[p.partition] = Number(p.offset)
      }
      const hw = {}
      for (const p of ends) hw[p.partition] = Number(p.high)
      emit({ ev: 'offsets', o, hw })
    } catch (e) {
      emit({ ev: 'monitor_err', err: String(e.type || e.message) })
    }
    await sleep(interval)
  }
  await admin.disconnect()
  emit({ ev: 'monitor_stopped' })
  process.exit(0)
}

const roles = { consume, produce, monitor }
if (!roles[role]) {
  process.stderr.write(`usage: group_churn.js {${Object.keys(roles).join('|')}} --brokers H:P ...\n`)
  process.exit(2)
}
roles[role]().catch(e => {
  emit({ ev: 'fatal', err: String((e && e.stack) || e) })
  process.stderr.write(`${name}: fatal: ${(e && e.stack) || e}\n`)
  process.exit(1)
})
