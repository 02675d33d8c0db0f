/**
 * The bytes a typed array or DataView really covers, found through the built-in getters: a
 * caller's view can redefine its own `length`, `byteOffset`, `buffer` or `subarray`, be a
 * subclass or a Proxy, but cannot change what these functions, taken when the module loads, see.
 */

const apply = Reflect.apply;
const isView = ArrayBuffer.isView;
const Bytes = Uint8Array;
const NO_ARGUMENTS: [] = [];
const typedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;
const getterOf = (prototype: object, key: PropertyKey): ((this: unknown) => unknown) => Object.getOwnPropertyDescriptor(prototype, key)!.get!;
/** `undefined` for anything but a typed array: the standard brand check. */
const typedArrayTag = getterOf(typedArrayPrototype, Symbol.toStringTag);
const typedArrayBuffer = getterOf(typedArrayPrototype, 'buffer');
const typedArrayOffset = getterOf(typedArrayPrototype, 'byteOffset');
const typedArrayLength = getterOf(typedArrayPrototype, 'byteLength');
const dataViewBuffer = getterOf(DataView.prototype, 'buffer');
const dataViewOffset = getterOf(DataView.prototype, 'byteOffset');
const dataViewLength = getterOf(DataView.prototype, 'byteLength');
const setBytes = (typedArrayPrototype as { set(source: ArrayLike<number>): void }).set;

/** Whether `value` is a typed array or a DataView (a Proxy around one is not). */
export function isBufferView(value: unknown): value is ArrayBufferView {
  return isView(value);
}

/** Whether `value` is a Uint8Array (a Node `Buffer` or any subclass too; a Proxy around one is not). */
export function isUint8Array(value: unknown): value is Uint8Array {
  return isView(value) && apply(typedArrayTag, value, NO_ARGUMENTS) === 'Uint8Array';
}

/**
 * A new Uint8Array over exactly the memory `view` (a typed array or DataView) covers; throws
 * `TypeError` when its buffer was detached (transferred).
 */
export function realView(view: ArrayBufferView): Uint8Array {
  try {
    const typed = apply(typedArrayTag, view, NO_ARGUMENTS) !== undefined;
    const buffer = apply(typed ? typedArrayBuffer : dataViewBuffer, view, NO_ARGUMENTS) as ArrayBuffer;
    const offset = apply(typed ? typedArrayOffset : dataViewOffset, view, NO_ARGUMENTS) as number;
    const length = apply(typed ? typedArrayLength : dataViewLength, view, NO_ARGUMENTS) as number;
    return new Bytes(buffer, offset, length);
  } catch {
    // A DataView's getters, and a view over an ArrayBuffer, throw only once the buffer is detached.
    throw new TypeError('A typed array or DataView whose ArrayBuffer was detached (transferred) cannot be read');
  }
}

/** A copy of the bytes `view` covers, in memory nobody else holds (see {@link realView}). */
export function copyOfView(view: ArrayBufferView): Uint8Array {
  const source = realView(view);
  const copy = new Bytes(source.byteLength);
  apply(setBytes, copy, [source]);
  return copy;
}
