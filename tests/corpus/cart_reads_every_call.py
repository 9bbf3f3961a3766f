# expect: storage-read-per-request
"""A cart that goes to storage for its state on every call."""
from workers import DurableObject


class Cart(DurableObject):
    async def add_item(self, sku, qty=1):
        cart = await self.ctx.storage.get("cart") or {}
        cart[sku] = cart.get(sku, 0) + qty
        await self.ctx.storage.put("cart", cart)
        return cart

    async def remove_item(self, sku):
        cart = await self.ctx.storage.get("cart") or {}
        cart.pop(sku, None)
        await self.ctx.storage.put("cart", cart)
        return cart

    async def total_items(self):
        cart = await self.ctx.storage.get("cart") or {}
        return sum(cart.values())
