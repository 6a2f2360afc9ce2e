// Svelte options (the defaults: runes mode is chosen per component by its syntax).
export default {};
