// Elements: finding the page's, making new ones, and placing them; and the words around
// a number.

/**
 * The page's element with this id; an element missing, or of another kind, is a
 * mistake in index.html, said at once rather than at its first use.
 * @template {HTMLElement} T
 * @param {string} id
 * @param {{ new (): T }} kind
 * @returns {T}
 */
export function byId(id, kind) {
  const node = document.getElementById(id);
  if (!(node instanceof kind)) {
    throw new Error(`index.html has no ${kind.name} #${id}`);
  }
  return node;
}

/**
 * A new element: ``props`` are its properties (className, hidden…) or, when it has
 * none of that name, attributes (aria-…); then its children.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string | boolean>} [props]
 * @param {...(Node | string)} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name in node) {
      Object.assign(node, { [name]: value });
    } else {
      node.setAttribute(name, String(value));
    }
  }
  node.append(...children);
  return node;
}

/**
 * Make ``nodes`` the children of ``parent``, moving only those out of place: a node
 * left where it is keeps the focus, and a disclosure its state.
 * @param {Element} parent
 * @param {Element[]} nodes
 */
export function placeChildren(parent, nodes) {
  nodes.forEach((node, i) => {
    if (parent.children[i] !== node) {
      parent.insertBefore(node, parent.children[i] || null);
    }
  });
  while (parent.children.length > nodes.length) {
    parent.lastElementChild?.remove();
  }
}

/**
 * Forget the rendered items (by id) of those no longer ``listed``.
 * @param {Map<number, unknown>} items
 * @param {{ id: number }[]} listed
 */
export function forget(items, listed) {
  const ids = new Set(listed.map((each) => each.id));
  for (const id of items.keys()) {
    if (!ids.has(id)) {
      items.delete(id);
    }
  }
}

/**
 * "1 window", "2 windows".
 * @param {number} n
 * @param {string} noun
 */
export const count = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;
