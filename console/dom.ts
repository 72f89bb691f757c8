/**
 * The only way the page builds DOM: elements from tag names, attributes set
 * one by one, and children that are nodes or plain strings (text nodes).
 * Nothing here, or anywhere in the console, parses HTML: whatever a caller
 * wrote (reason, principal, audit detail) can only ever become text.
 */

type Child = Node | string | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined) element.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === undefined || child === false) continue;
    element.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return element;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element as T;
}

/** Replace an element's children; strings become text. */
export function fill(element: Element, ...children: Child[]): void {
  element.replaceChildren(
    ...children.filter((c): c is Node | string => c !== undefined && c !== false),
  );
}

/** Set text only when it changed (the countdown touches a thousand cells a second). */
export function setText(element: Element, text: string): void {
  if (element.textContent !== text) element.textContent = text;
}
