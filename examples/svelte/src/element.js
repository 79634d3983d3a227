import { mount } from "svelte";
import Element from "./Element.svelte";

mount(Element, { target: document.getElementById("app") });
