/**
 * The only way the page builds DOM: elements from tag names, attributes set
 * one by one, and children that are nodes or plain strings (text nodes).
 * Nothing here, or anywhere in the console, parses HTML: whatever a caller
 * wrote (reason, principal, audit detail) can only ever become text, and
 * that text is printable (`printable`): a bidi override or a control
 * character shows as its escape, `\u202e`, instead of reordering or hiding
 * what the operator reads.
 */
import { printable } from '../src/contract/printable';

/** Attributes whose value is data, not shown: kept as is (`value` is compared with API names). */
const DATA_ATTRIBUTES = new Set(['value', 'href', 'download', 'class', 'type', 'id']);

type Child = Node | string | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined) setAttribute(element, name, value);
  }
  for (const child of children) {
    if (child === undefined || child === false) continue;
    element.append(typeof child === 'string' ? document.createTextNode(printable(child)) : child);
  }
  return element;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element (the chart), built by the same rules as `h`: attributes one by one, text as text. */
export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | undefined> = {},
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined) setAttribute(element, name, value);
  }
  for (const child of children) {
    if (child === undefined || child === false) continue;
    element.append(typeof child === 'string' ? document.createTextNode(printable(child)) : child);
  }
  return element;
}

/** An attribute; one a person reads (title, aria-label) is made printable. */
export function setAttribute(element: Element, name: string, value: string): void {
  const data = DATA_ATTRIBUTES.has(name) || name.startsWith('data-');
  element.setAttribute(name, data ? value : printable(value));
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element as T;
}

/** Replace an element's children; strings become text. */
export function fill(element: Element, ...children: Child[]): void {
  element.replaceChildren(
    ...children
      .filter((c): c is Node | string => c !== undefined && c !== false)
      .map((c) => (typeof c === 'string' ? printable(c) : c)),
  );
}

/** Set printable text, only when it changed (the countdown touches a thousand cells a second). */
export function setText(element: Element, text: string): void {
  const shown = printable(text);
  if (element.textContent !== shown) element.textContent = shown;
}
