import { performance } from 'node:perf_hooks'

/** Something with at most one deadline at a time in a `Deadlines`. */
export interface Timed {
  /** Where the deadline is in its `Deadlines`; only `Deadlines` writes it. Starts at `UNSCHEDULED`. */
  deadlineSlot: number
  /** The deadline passed (called once, on a later turn than the one that set it). */
  deadlinePassed: () => void
}

/** No deadline. */
export const UNSCHEDULED = -1
/** Taken off the heap because it passed; `deadlinePassed` is about to run. */
const PASSED = -2
/** setTimeout's largest delay; a longer wait is re-armed when the timer fires. */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * One deadline per item for any number of items, on a single Node timer: a binary min-heap
 * (items and their due times in two arrays, each item holding its own index) and one
 * `setTimeout` armed for the earliest. Per item that is two array slots and a number, instead
 * of a `Timeout` object and a closure each. Delays are measured on the monotonic clock, as
 * `setTimeout` does.
 */
export class Deadlines<T extends Timed> {
  private readonly items: T[] = []
  private readonly due: number[] = []
  private timer: NodeJS.Timeout | undefined
  /** The due time the timer is armed for (Infinity: not armed). */
  private armedFor = Infinity
  private readonly onTimer = (): void => { this.fire() }

  get size (): number {
    return this.items.length
  }

  /** Sets `item`'s deadline `ms` from now, replacing the one it had. */
  set (item: T, ms: number): void {
    const at = performance.now() + Math.max(ms, 0)
    const slot = item.deadlineSlot
    if (slot >= 0) {
      const before = this.due[slot]
      this.due[slot] = at
      if (at < before) this.up(slot)
      else this.down(slot)
    } else {
      item.deadlineSlot = this.items.length
      this.items.push(item)
      this.due.push(at)
      this.up(this.items.length - 1)
    }
    if (at < this.armedFor) this.arm()
  }

  /** Drops `item`'s deadline, if it has one (also one that passed but was not told yet). */
  clear (item: T): void {
    const slot = item.deadlineSlot
    item.deadlineSlot = UNSCHEDULED
    if (slot < 0) return
    const last = this.items.length - 1
    const lastItem = this.items.pop() as T
    const lastDue = this.due.pop() as number
    if (slot !== last) {
      this.items[slot] = lastItem
      this.due[slot] = lastDue
      lastItem.deadlineSlot = slot
      this.up(slot)
      this.down(lastItem.deadlineSlot)
    }
    // An earlier wake-up than needed is harmless; only an empty heap must not keep a timer.
    if (this.items.length === 0) this.disarm()
  }

  private fire (): void {
    this.timer = undefined
    this.armedFor = Infinity
    const now = performance.now()
    const passed: T[] = []
    while (this.items.length > 0 && this.due[0] <= now) {
      const item = this.items[0]
      this.clear(item)
      item.deadlineSlot = PASSED
      passed.push(item)
    }
    if (this.items.length > 0) this.arm()
    for (const item of passed) {
      // Cleared or set again by an earlier one of this batch: not due any more.
      if (item.deadlineSlot !== PASSED) continue
      item.deadlineSlot = UNSCHEDULED
      item.deadlinePassed()
    }
  }

  private arm (): void {
    this.disarm()
    const at = this.due[0]
    this.armedFor = at
    // Rounded up: a timer never fires before its time, so the head is due when it does.
    this.timer = setTimeout(this.onTimer, Math.min(Math.max(Math.ceil(at - performance.now()), 1), MAX_TIMER_MS))
  }

  private disarm (): void {
    if (this.timer === undefined) return
    clearTimeout(this.timer)
    this.timer = undefined
    this.armedFor = Infinity
  }

  private up (slot: number): void {
    const item = this.items[slot]
    const at = this.due[slot]
    while (slot > 0) {
      const parent = (slot - 1) >> 1
      if (this.due[parent] <= at) break
      this.place(slot, this.items[parent], this.due[parent])
      slot = parent
    }
    this.place(slot, item, at)
  }

  private down (slot: number): void {
    const n = this.items.length
    const item = this.items[slot]
    const at = this.due[slot]
    for (;;) {
      let child = 2 * slot + 1
      if (child >= n) break
      if (child + 1 < n && this.due[child + 1] < this.due[child]) child++
      if (this.due[child] >= at) break
      this.place(slot, this.items[child], this.due[child])
      slot = child
    }
    this.place(slot, item, at)
  }

  private place (slot: number, item: T, at: number): void {
    this.items[slot] = item
    this.due[slot] = at
    item.deadlineSlot = slot
  }
}
